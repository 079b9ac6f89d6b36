// Readers for safetensors and GGUF written from the format specifications, independently of
// dipaco's writers (shared/tensor/safetensors.cc, shared/export/gguf_writer.cc), so the tests
// check the files against the specs rather than against our own code:
//   safetensors: https://huggingface.co/docs/safetensors (u64 LE header size N, N bytes of JSON
//     {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, data)
//   GGUF v3: ggml docs/gguf.md (magic, version, counts, typed key/values, tensor infos with
//     ne[] innermost first, data aligned to general.alignment).
//   SentencePiece ModelProto: protobuf's wire format (a varint tag = field << 3 | wire type,
//     then a varint, 8 or 4 bytes, or a varint length and that many bytes) and the field
//     numbers of sentencepiece_model.proto, independently of shared/export/sentencepiece_spec.cc.
// Errors go to `error`; a reader never asserts on malformed input.
#pragma once

#include <QByteArray>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace spec {

inline QByteArray slurp(const QString& path) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) return {};
  return f.readAll();
}

// --- safetensors -------------------------------------------------------------------------

struct StTensor {
  QString dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

struct SafetensorsHeader {
  QString error;
  std::map<QString, StTensor> tensors;
  std::map<QString, QString> metadata;
  QByteArray data;  // the data section
};

inline SafetensorsHeader read_safetensors(const QString& path) {
  SafetensorsHeader h;
  QByteArray all = slurp(path);
  if (all.size() < 8) {
    h.error = "shorter than 8 bytes";
    return h;
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(all[i]);
  if (n > static_cast<uint64_t>(all.size()) - 8) {
    h.error = "header size beyond the file";
    return h;
  }
  QByteArray json = all.mid(8, static_cast<qsizetype>(n));
  if (!json.startsWith('{')) {
    h.error = "header does not start with '{'";
    return h;
  }
  QJsonParseError perr;
  QJsonDocument doc = QJsonDocument::fromJson(json, &perr);
  if (!doc.isObject()) {
    h.error = "header is not a JSON object: " + perr.errorString();
    return h;
  }
  h.data = all.mid(static_cast<qsizetype>(8 + n));
  const QJsonObject obj = doc.object();
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (it.key() == "__metadata__") {
      const QJsonObject m = it.value().toObject();
      for (auto mi = m.begin(); mi != m.end(); ++mi) {
        if (!mi.value().isString()) h.error = "metadata value is not a string: " + mi.key();
        h.metadata[mi.key()] = mi.value().toString();
      }
      continue;
    }
    const QJsonObject t = it.value().toObject();
    StTensor st;
    st.dtype = t.value("dtype").toString();
    for (const auto& d : t.value("shape").toArray()) st.shape.push_back(d.toInteger());
    const QJsonArray off = t.value("data_offsets").toArray();
    if (off.size() != 2) h.error = "data_offsets of " + it.key() + " is not [begin, end]";
    st.begin = static_cast<uint64_t>(off.at(0).toInteger());
    st.end = static_cast<uint64_t>(off.at(1).toInteger());
    int64_t numel = 1;
    for (int64_t d : st.shape) numel *= d;
    const int width = st.dtype == "F32" ? 4 : st.dtype == "F16" || st.dtype == "BF16" ? 2 : 0;
    if (width == 0) h.error = "unexpected dtype " + st.dtype + " of " + it.key();
    if (st.end < st.begin || st.end - st.begin != static_cast<uint64_t>(numel * width))
      h.error = "byte range of " + it.key() + " does not match dtype x shape";
    if (st.end > static_cast<uint64_t>(h.data.size())) h.error = it.key() + " ends past the file";
    h.tensors[it.key()] = st;
  }
  // The spec: the byte buffer is entirely indexed, without holes or overlaps.
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, t] : h.tensors) ranges.push_back({t.begin, t.end});
  std::sort(ranges.begin(), ranges.end());
  uint64_t at = 0;
  for (const auto& [b, e] : ranges) {
    if (b != at) h.error = "the data section has a hole or an overlap";
    at = e;
  }
  if (at != static_cast<uint64_t>(h.data.size())) h.error = "trailing bytes after the last tensor";
  return h;
}

inline std::vector<float> st_floats(const SafetensorsHeader& h, const QString& name) {
  auto it = h.tensors.find(name);
  if (it == h.tensors.end() || it->second.dtype != "F32") return {};
  std::vector<float> v((it->second.end - it->second.begin) / 4);
  std::memcpy(v.data(), h.data.constData() + it->second.begin, v.size() * 4);
  return v;
}

// --- GGUF --------------------------------------------------------------------------------

struct GgufValue {
  uint32_t type = 0;
  uint64_t u = 0;  // unsigned ints and bool
  int64_t i = 0;   // signed ints
  double f = 0;    // floats
  std::string s;
  uint32_t array_type = 0;
  std::vector<GgufValue> array;
};

struct GgufTensor {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type = 0;
  uint64_t offset = 0;
};

struct GgufFile {
  std::string error;
  uint32_t version = 0;
  std::map<std::string, GgufValue> kv;
  std::vector<GgufTensor> tensors;
  QByteArray bytes;
  uint64_t data_start = 0;
  const GgufTensor* find(const std::string& name) const {
    for (const auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
};

class GgufCursor {
 public:
  explicit GgufCursor(const QByteArray& b) : b_(b) {}
  bool ok() const { return ok_; }
  uint64_t pos() const { return pos_; }
  template <typename T>
  T get() {
    T v{};
    if (pos_ + sizeof(T) > static_cast<uint64_t>(b_.size())) {
      ok_ = false;
      return v;
    }
    std::memcpy(&v, b_.constData() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str() {
    uint64_t n = get<uint64_t>();
    if (!ok_ || pos_ + n > static_cast<uint64_t>(b_.size())) {
      ok_ = false;
      return {};
    }
    std::string s(b_.constData() + pos_, n);
    pos_ += n;
    return s;
  }
  GgufValue value(uint32_t type, int depth = 0) {
    GgufValue v;
    v.type = type;
    switch (type) {
      case 0: v.u = get<uint8_t>(); break;
      case 1: v.i = get<int8_t>(); break;
      case 2: v.u = get<uint16_t>(); break;
      case 3: v.i = get<int16_t>(); break;
      case 4: v.u = get<uint32_t>(); break;
      case 5: v.i = get<int32_t>(); break;
      case 6: v.f = get<float>(); break;
      case 7: {
        uint8_t b = get<uint8_t>();
        if (b > 1) ok_ = false;  // the spec: bool is 0 or 1
        v.u = b;
        break;
      }
      case 8: v.s = str(); break;
      case 9: {
        v.array_type = get<uint32_t>();
        uint64_t n = get<uint64_t>();
        if (depth > 2 || n > static_cast<uint64_t>(b_.size())) {
          ok_ = false;
          break;
        }
        for (uint64_t k = 0; k < n && ok_; ++k) v.array.push_back(value(v.array_type, depth + 1));
        break;
      }
      case 10: v.u = get<uint64_t>(); break;
      case 11: v.i = get<int64_t>(); break;
      case 12: v.f = get<double>(); break;
      default: ok_ = false;
    }
    return v;
  }

 private:
  const QByteArray& b_;
  uint64_t pos_ = 0;
  bool ok_ = true;
};

// Bytes of a GGUF tensor of `n` elements (the types the tests expect).
inline uint64_t ggml_bytes(uint32_t type, uint64_t n) {
  switch (type) {
    case 0: return 4 * n;        // F32
    case 1: return 2 * n;        // F16
    case 30: return 2 * n;       // BF16
    case 8: return n / 32 * 34;  // Q8_0: f16 scale + 32 x int8
    default: return 0;
  }
}

inline GgufFile read_gguf(const QString& path) {
  GgufFile g;
  g.bytes = slurp(path);
  GgufCursor c(g.bytes);
  if (g.bytes.size() < 4 || std::memcmp(g.bytes.constData(), "GGUF", 4) != 0) {
    g.error = "no GGUF magic";
    return g;
  }
  c.get<uint32_t>();
  g.version = c.get<uint32_t>();
  uint64_t n_tensors = c.get<uint64_t>();
  uint64_t n_kv = c.get<uint64_t>();
  for (uint64_t k = 0; k < n_kv && c.ok(); ++k) {
    std::string key = c.str();
    uint32_t type = c.get<uint32_t>();
    if (g.kv.count(key)) g.error = "duplicate key " + key;
    g.kv[key] = c.value(type);
  }
  for (uint64_t t = 0; t < n_tensors && c.ok(); ++t) {
    GgufTensor info;
    info.name = c.str();
    uint32_t n_dims = c.get<uint32_t>();
    if (n_dims > 4) {
      g.error = "tensor " + info.name + " has more than 4 dims";
      return g;
    }
    for (uint32_t d = 0; d < n_dims; ++d) info.ne.push_back(c.get<uint64_t>());
    info.type = c.get<uint32_t>();
    info.offset = c.get<uint64_t>();
    g.tensors.push_back(info);
  }
  if (!c.ok()) {
    g.error = "truncated";
    return g;
  }
  uint64_t alignment = 32;
  if (auto it = g.kv.find("general.alignment"); it != g.kv.end()) alignment = it->second.u;
  g.data_start = (c.pos() + alignment - 1) / alignment * alignment;
  for (const auto& t : g.tensors) {
    uint64_t n = 1;
    for (uint64_t d : t.ne) n *= d;
    uint64_t bytes = ggml_bytes(t.type, n);
    if (bytes == 0) g.error = "tensor " + t.name + ": unexpected type " + std::to_string(t.type);
    if (t.offset % alignment) g.error = "tensor " + t.name + " is not aligned";
    if (g.data_start + t.offset + bytes > static_cast<uint64_t>(g.bytes.size()))
      g.error = "tensor " + t.name + " ends past the file";
  }
  return g;
}

inline float half_to_float(uint16_t h) {
  // value = (-1)^s * 2^(e-15) * (1 + m/1024), subnormals 2^-14 * m/1024.
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0    ? std::ldexp(m / 1024.0, -14)
             : e == 31 ? (m ? NAN : INFINITY)
                       : std::ldexp(1.0 + m / 1024.0, e - 15);
  return static_cast<float>(s ? -v : v);
}

// The tensor's values as floats, row-major [ne[1]][ne[0]].
inline std::vector<float> gguf_floats(const GgufFile& g, const GgufTensor& t) {
  uint64_t n = 1;
  for (uint64_t d : t.ne) n *= d;
  std::vector<float> out(n);
  const auto* p = reinterpret_cast<const uint8_t*>(g.bytes.constData() + g.data_start + t.offset);
  for (uint64_t i = 0; i < n; ++i) {
    switch (t.type) {
      case 0: std::memcpy(&out[i], p + 4 * i, 4); break;
      case 1: out[i] = half_to_float(static_cast<uint16_t>(p[2 * i] | p[2 * i + 1] << 8)); break;
      case 30: {
        uint32_t bits = static_cast<uint32_t>(p[2 * i] | p[2 * i + 1] << 8) << 16;
        std::memcpy(&out[i], &bits, 4);
        break;
      }
      case 8: {
        const uint8_t* block = p + (i / 32) * 34;
        float d = half_to_float(static_cast<uint16_t>(block[0] | block[1] << 8));
        out[i] = d * static_cast<float>(static_cast<int8_t>(block[2 + i % 32]));
        break;
      }
    }
  }
  return out;
}

// --- SentencePiece ModelProto ------------------------------------------------------------

// The top-level fields of one protobuf message; a field given twice keeps its last value.
struct ProtoMessage {
  std::string error;
  std::map<uint32_t, uint64_t> varints;     // wire type 0
  std::map<uint32_t, std::string> buffers;  // wire type 2: strings, bytes, sub-messages
  uint64_t varint_or(uint32_t field, uint64_t fallback) const {
    auto it = varints.find(field);
    return it == varints.end() ? fallback : it->second;
  }
};

inline ProtoMessage read_proto_message(const std::string& bytes) {
  ProtoMessage m;
  size_t at = 0;
  auto read_varint = [&](uint64_t* v) {
    *v = 0;
    for (int bits = 0; bits < 70; bits += 7) {
      if (at >= bytes.size()) return false;
      const uint8_t b = static_cast<uint8_t>(bytes[at++]);
      *v |= uint64_t{b & 0x7fu} << bits;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  };
  while (at < bytes.size()) {
    uint64_t tag = 0, value = 0;
    if (!read_varint(&tag)) {
      m.error = "bad tag";
      return m;
    }
    const auto field = static_cast<uint32_t>(tag >> 3);
    switch (tag & 7) {
      case 0:
        if (!read_varint(&value)) m.error = "bad varint";
        m.varints[field] = value;
        break;
      case 1: at += 8; break;
      case 5: at += 4; break;
      case 2:
        if (!read_varint(&value) || value > bytes.size() - at) {
          m.error = "bad length";
          return m;
        }
        m.buffers[field] = bytes.substr(at, value);
        at += value;
        break;
      default: m.error = "wire type " + std::to_string(tag & 7); return m;
    }
    if (at > bytes.size()) m.error = "truncated";
    if (!m.error.empty()) return m;
  }
  return m;
}

// ModelProto { TrainerSpec trainer_spec = 2; NormalizerSpec normalizer_spec = 3; }
// TrainerSpec { ModelType model_type = 3 [default UNIGRAM = 1]; }   BPE = 2, WORD = 3, CHAR = 4
// NormalizerSpec { bytes precompiled_charsmap = 2; bool add_dummy_prefix = 3 [default true];
//                  bool remove_extra_whitespaces = 4 [default true]; }
struct SentencePieceProto {
  std::string error;
  uint64_t model_type = 1;
  std::string precompiled_charsmap;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
};

inline SentencePieceProto read_sentencepiece_proto(const std::string& model_file) {
  SentencePieceProto p;
  const ProtoMessage model = read_proto_message(model_file);
  const ProtoMessage trainer =
      read_proto_message(model.buffers.count(2) ? model.buffers.at(2) : "");
  const ProtoMessage normalizer =
      read_proto_message(model.buffers.count(3) ? model.buffers.at(3) : "");
  p.error = model.error + trainer.error + normalizer.error;
  p.model_type = trainer.varint_or(3, 1);
  if (normalizer.buffers.count(2)) p.precompiled_charsmap = normalizer.buffers.at(2);
  p.add_dummy_prefix = normalizer.varint_or(3, 1) != 0;
  p.remove_extra_whitespaces = normalizer.varint_or(4, 1) != 0;
  return p;
}

}  // namespace spec
