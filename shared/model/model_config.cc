#include "model/model_config.h"

#include <charconv>
#include <cstdlib>
#include <sstream>

namespace dipaco {

Status ModelConfig::validate() const {
  auto positive = [](const char* key, long long v) -> Status {
    if (v >= 1) return Status::ok();
    return invalid_argument(std::string(key) + " must be >= 1, got " + std::to_string(v));
  };
  DIPACO_RETURN_IF_ERROR(positive("vocab_size", vocab_size));
  DIPACO_RETURN_IF_ERROR(positive("d_model", d_model));
  DIPACO_RETURN_IF_ERROR(positive("n_layers", n_layers));
  DIPACO_RETURN_IF_ERROR(positive("n_heads", n_heads));
  DIPACO_RETURN_IF_ERROR(positive("n_kv_heads", n_kv_heads));
  DIPACO_RETURN_IF_ERROR(positive("d_ff", d_ff));
  DIPACO_RETURN_IF_ERROR(positive("max_seq_len", max_seq_len));
  if (vocab_size < 2) return invalid_argument("vocab_size must be >= 2, got 1");
  if (d_model % n_heads != 0) {
    return invalid_argument("d_model " + std::to_string(d_model) + " is not divisible by n_heads " +
                            std::to_string(n_heads));
  }
  if (n_heads % n_kv_heads != 0) {
    return invalid_argument("n_heads " + std::to_string(n_heads) +
                            " is not divisible by n_kv_heads " + std::to_string(n_kv_heads) +
                            " (each key/value head serves a whole group of query heads)");
  }
  if (head_dim() % 2 != 0) {
    return invalid_argument("head dimension d_model / n_heads = " + std::to_string(head_dim()) +
                            " must be even for rotary embeddings");
  }
  if (!(rope_theta > 0)) return invalid_argument("rope_theta must be > 0");
  if (!(norm_eps > 0)) return invalid_argument("norm_eps must be > 0");
  // Row offsets are computed in 32-bit ints in places (sgemm dimensions).
  if (static_cast<long long>(vocab_size) * d_model >= (1LL << 31) ||
      static_cast<long long>(d_ff) * d_model >= (1LL << 31)) {
    return invalid_argument(
        "model too large: vocab_size * d_model and d_ff * d_model must be < 2^31");
  }
  return Status::ok();
}

namespace {
// Shortest text that reads back as the same double.
std::string shortest(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}
}  // namespace

std::string ModelConfig::to_string() const {
  std::ostringstream out;
  out << "vocab_size=" << vocab_size << " d_model=" << d_model << " n_layers=" << n_layers
      << " n_heads=" << n_heads << " n_kv_heads=" << n_kv_heads << " d_ff=" << d_ff
      << " max_seq_len=" << max_seq_len << " rope_theta=" << shortest(rope_theta)
      << " norm_eps=" << shortest(norm_eps);
  return out.str();
}

std::string ModelConfig::difference(const ModelConfig& other) const {
  std::istringstream a(to_string()), b(other.to_string());
  std::string x, y, diff;
  while (a >> x && b >> y) {
    if (x == y) continue;
    size_t eq = x.find('=');
    diff += (diff.empty() ? "" : ", ") + x.substr(0, eq) + " " + x.substr(eq + 1) + " vs " +
            y.substr(eq + 1);
  }
  return diff;
}

Result<ModelConfig> ModelConfig::parse(std::string_view text) {
  ModelConfig config;
  std::istringstream in{std::string(text)};
  std::string item;
  while (in >> item) {
    size_t eq = item.find('=');
    if (eq == std::string::npos)
      return invalid_argument("model config: expected key=value, got '" + item + "'");
    std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    int* int_field = key == "vocab_size"    ? &config.vocab_size
                     : key == "d_model"     ? &config.d_model
                     : key == "n_layers"    ? &config.n_layers
                     : key == "n_heads"     ? &config.n_heads
                     : key == "n_kv_heads"  ? &config.n_kv_heads
                     : key == "d_ff"        ? &config.d_ff
                     : key == "max_seq_len" ? &config.max_seq_len
                                            : nullptr;
    if (int_field != nullptr) {
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), *int_field);
      if (ec != std::errc() || ptr != value.data() + value.size())
        return invalid_argument("model config: " + key + " is not an integer: '" + value + "'");
    } else if (key == "rope_theta" || key == "norm_eps") {
      char* end = nullptr;
      double v = std::strtod(value.c_str(), &end);
      if (end == value.c_str() || *end != '\0')
        return invalid_argument("model config: " + key + " is not a number: '" + value + "'");
      (key == "rope_theta" ? config.rope_theta : config.norm_eps) = v;
    } else {
      return invalid_argument("model config: unknown key '" + key + "'");
    }
  }
  DIPACO_RETURN_IF_ERROR(config.validate());
  return config;
}

}  // namespace dipaco
