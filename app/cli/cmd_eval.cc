// dipaco eval EXPORT --data PATH: per-path and routed perplexity of an export, document by
// document (shared/export/perplexity.h). PATH is a token file (.tok, from 'dipaco data
// tokenize') or a corpus as 'dipaco data tokenize' reads it (.txt blocks, .jsonl[.gz], a
// directory; data/text_corpus.h), whose documents are encoded with the export's tokenizer as
// BOS, ids, EOS. A progress line (documents, tokens/s, ETA) goes to stderr.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "cli/commands.h"
#include "data/text_corpus.h"
#include "data/token_file.h"
#include "export/export_reader.h"
#include "export/path_chooser.h"
#include "export/perplexity.h"
#include "export/run_source.h"
#include "spm/sentencepiece_library.h"
#include "util/arg_parser.h"
#include "util/progress.h"

namespace dipaco::cli {

namespace {

using Documents = std::vector<std::vector<int32_t>>;

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix.data(), suffix.size()) == 0;
}

bool is_token_file(const std::string& path) {
  return ends_with(path, ".tok");
}

// --data is a token file or anything 'dipaco data tokenize --corpus' reads; checked before the
// models load so that a wrong file fails at once.
Status check_data_path(const std::string& path) {
  std::error_code ec;
  if (is_token_file(path) || is_corpus_file(path) || std::filesystem::is_directory(path, ec))
    return Status::ok();
  return invalid_argument(path +
                          ": unsupported --data file type (expected a token file .tok from "
                          "'dipaco data tokenize', or a corpus: .txt, .jsonl, .jsonl.gz, "
                          ".json.gz, or a directory of them)");
}

Result<Documents> read_token_documents(const std::string& file, int vocab_size,
                                       int64_t max_documents) {
  DIPACO_ASSIGN_OR_RETURN(TokenFile tf, TokenFile::open(file));
  if (static_cast<int>(tf.vocab_size()) > vocab_size)
    return invalid_argument(file + ": token file vocab_size " + std::to_string(tf.vocab_size()) +
                            " is larger than the model's " + std::to_string(vocab_size) +
                            "; was it tokenized with another tokenizer?");
  Documents docs;
  for (uint64_t d = 0; d < tf.num_documents(); ++d) {
    if (max_documents > 0 && static_cast<int64_t>(docs.size()) >= max_documents) break;
    std::vector<int32_t> doc(tf.document_end(d) - tf.document_begin(d));
    tf.read(tf.document_begin(d), doc.size(), doc.data());
    docs.push_back(std::move(doc));
  }
  return docs;
}

// A corpus read as 'dipaco data tokenize' reads it (a .txt file's blank-line-separated blocks,
// JSONL "text" fields, a directory's files), each document encoded as BOS ids EOS.
Result<Documents> read_corpus_documents(const std::string& path,
                                        const SentencePieceModel& tokenizer,
                                        int64_t max_documents) {
  DIPACO_ASSIGN_OR_RETURN(std::vector<Document> corpus, read_corpus({path}));
  if (max_documents > 0 && static_cast<int64_t>(corpus.size()) > max_documents)
    corpus.resize(static_cast<size_t>(max_documents));
  Documents docs;
  docs.reserve(corpus.size());
  for (const Document& document : corpus) {
    auto ids = tokenizer.encode(document.text);
    if (!ids.is_ok()) return ids.status().with_context(document.id);
    std::vector<int32_t> doc;
    doc.reserve(ids->size() + 2);
    if (tokenizer.bos_id() >= 0) doc.push_back(tokenizer.bos_id());
    doc.insert(doc.end(), ids->begin(), ids->end());
    if (tokenizer.eos_id() >= 0) doc.push_back(tokenizer.eos_id());
    docs.push_back(std::move(doc));
  }
  return docs;
}

Result<Documents> read_documents(const std::string& path, const SentencePieceModel& tokenizer,
                                 int vocab_size, int64_t max_documents) {
  if (is_token_file(path)) return read_token_documents(path, vocab_size, max_documents);
  return read_corpus_documents(path, tokenizer, max_documents);
}

void print_row(const std::string& name, const NllSum& s) {
  std::printf("  %-34s %10lld tokens  loss %.4f  perplexity %.2f\n", name.c_str(),
              static_cast<long long>(s.tokens), s.mean(), s.perplexity());
}

}  // namespace

int cmd_eval(const Args& args) {
  ArgParser parser("dipaco eval",
                   "Perplexity of each exported path and of routed evaluation (each document "
                   "scored by the path chosen from its first tokens) on --data.");
  std::string dir, data, dense;
  int64_t path = -1, max_documents = 0, threads = 0;
  parser.add_positional("EXPORT", "export directory", &dir);
  parser.add_option("--data", "PATH",
                    "token file (.tok), or a corpus as for 'dipaco data tokenize': .txt, "
                    ".jsonl, .jsonl.gz, or a directory of them",
                    &data);
  parser.add_option("--path", "ID", "evaluate only this path", &path, 0, 1'000'000);
  parser.add_option("--max-documents", "N", "first N documents only (default all)", &max_documents,
                    0, INT64_MAX);
  parser.add_option("--dense", "DIR",
                    "also score a dense model: a Hugging Face directory or a 'dipaco train' "
                    "checkpoint directory",
                    &dense);
  parser.add_option("--threads", "N", "CPU threads, 0 = all cores", &threads, 0, 4096);
  int64_t reroute_every = -1;
  parser.add_option("--reroute-every", "W",
                    "also score with re-routing every W tokens, 0 = never (default: the "
                    "router's)",
                    &reroute_every, 0, 1'000'000);
  if (Status s = parser.parse(args); !s) {
    std::fprintf(stderr, "dipaco eval: %s\n\n%s", s.message().c_str(), parser.usage().c_str());
    return kExitUsage;
  }
  if (parser.help_requested()) {
    std::printf("%s", parser.usage().c_str());
    return kExitOk;
  }
  if (data.empty()) {
    std::fprintf(stderr, "dipaco eval: --data PATH is required\n\n%s", parser.usage().c_str());
    return kExitUsage;
  }
  if (Status s = check_data_path(data); !s) {
    std::fprintf(stderr, "dipaco eval: %s\n", s.message().c_str());
    return kExitUsage;
  }
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "dipaco eval: %s\n", s.message().c_str());
    return kExitFailure;
  };
  auto ex = open_export(dir);
  if (!ex.is_ok()) return fail(ex.status());
  std::optional<int> only;
  if (path >= 0) {
    only = static_cast<int>(path);
    if (ex->find_path(*only) == nullptr)
      return fail(not_found(dir + ": the export has no path " + std::to_string(*only) +
                            " (its paths: " + ex->path_ids() + ")"));
  }
  auto tokenizer = SentencePieceModel::load_file(ex->tokenizer);
  if (!tokenizer.is_ok()) return fail(tokenizer.status());
  CpuBackend backend(static_cast<int>(threads));
  std::vector<int> ids;
  std::vector<std::unique_ptr<Model>> models;
  for (const auto& p : ex->paths) {
    if (only && p.id != *only) continue;
    auto model = load_path_model(&backend, p);
    if (!model.is_ok()) return fail(model.status());
    ids.push_back(p.id);
    models.push_back(std::move(*model));
  }
  std::unique_ptr<Model> dense_model;
  if (!dense.empty()) {
    auto hf = load_hf_export(dense);
    std::optional<ModelConfig> config;
    std::vector<float> params;
    if (hf.is_ok()) {
      config = hf->config;
      params = std::move(hf->params);
    } else if (std::filesystem::exists(std::filesystem::path(dense) / "dipaco.json")) {
      auto other = open_export(dense);
      return fail(invalid_argument(
          "--dense: " + dense + " is a dipaco export" +
          (other.is_ok() ? " (paths " + other->path_ids() + ")" : std::string()) +
          ", not one model; pass one of its path directories (" + dense + "/path-<id>)"));
    } else {
      auto run = open_run(dense);
      if (!run.is_ok()) return fail(run.status().with_context("--dense"));
      auto read = read_path_params(run->paths.at(0).checkpoint, run->model);
      if (!read.is_ok()) return fail(read.status().with_context("--dense"));
      config = run->model;
      params = std::move(*read);
    }
    auto created = Model::create(&backend, *config, 1, config->max_seq_len);
    if (!created.is_ok()) return fail(created.status());
    dense_model = std::move(*created);
    dense_model->set_params(params);
  }
  const int vocab = models.front()->config().vocab_size;
  auto docs = read_documents(data, *tokenizer, vocab, max_documents);
  if (!docs.is_ok()) return fail(docs.status());
  if (docs->empty()) return fail(invalid_argument(data + ": no documents"));

  auto chooser = make_path_chooser(*ex, only, &backend);
  const int reroute = !chooser.is_ok()     ? 0
                      : reroute_every >= 0 ? static_cast<int>(reroute_every)
                                           : (*chooser)->reroute_every();
  int64_t unroutable = 0, unroutable_rerouted = 0;
  std::vector<NllSum> per_path(models.size());
  NllSum routed, rerouted, oracle, dense_sum;
  auto model_index = [&](int id) {
    for (size_t m = 0; m < models.size(); ++m)
      if (ids[m] == id) return static_cast<int>(m);
    return -1;
  };
  uint64_t total_tokens = 0;
  for (const auto& doc : *docs) total_tokens += doc.size();
  Progress progress("evaluating", docs->size(), "docs");
  progress.set_rate_unit("tokens", total_tokens);
  // Adds one document to every sum.
  auto score = [&](const std::vector<int32_t>& doc) {
    std::vector<NllSum> here(models.size());
    std::vector<std::vector<double>> per_token(models.size());
    for (size_t m = 0; m < models.size(); ++m) {
      if (reroute > 0) {
        per_token[m] = token_nll(*models[m], doc);
        for (double x : per_token[m]) here[m].nll += x;
        here[m].tokens = static_cast<int64_t>(per_token[m].size());
      } else {
        here[m] = document_nll(*models[m], doc);
      }
      per_path[m] += here[m];
    }
    size_t best = 0;
    for (size_t m = 1; m < models.size(); ++m)
      if (here[m].nll < here[best].nll) best = m;
    oracle += here[best];
    if (dense_model) dense_sum += document_nll(*dense_model, doc);
    if (!chooser.is_ok() || doc.size() < 2) return;
    auto first = (*chooser)->choose(doc);
    int m = first.is_ok() ? model_index(*first) : -1;
    if (m < 0) {
      ++unroutable;
    } else {
      routed += here[m];
    }
    if (reroute <= 0) return;
    // Predictions i in [kW, (k+1)W) (targets doc[i+1], context doc[0..i]) by the path
    // routed on the context before the first of them, doc[0..kW], as generate does.
    NllSum doc_sum;
    bool ok = m >= 0;
    for (size_t begin = 0; ok && begin < per_token[0].size(); begin += reroute) {
      if (begin > 0) {
        auto id = (*chooser)->choose_at(doc, begin + 1);
        m = id.is_ok() ? model_index(*id) : -1;
        if (m < 0) {
          ok = false;
          break;
        }
      }
      const size_t end = std::min(per_token[0].size(), begin + static_cast<size_t>(reroute));
      for (size_t i = begin; i < end; ++i) doc_sum.nll += per_token[m][i];
      doc_sum.tokens += static_cast<int64_t>(end - begin);
    }
    if (ok) {
      rerouted += doc_sum;
    } else {
      ++unroutable_rerouted;
    }
  };
  for (const auto& doc : *docs) {
    score(doc);
    progress.advance(1, doc.size());
  }
  progress.finish();
  std::printf("%s on %s: %zu documents\n", dir.c_str(), data.c_str(), docs->size());
  for (size_t m = 0; m < models.size(); ++m)
    print_row("path " + std::to_string(ids[m]), per_path[m]);
  if (chooser.is_ok()) {
    print_row("routed (" + (*chooser)->describe() + ")", routed);
    if (unroutable > 0)
      std::printf("  (%lld documents routed to paths not in the export are left out of 'routed')\n",
                  static_cast<long long>(unroutable));
    if (reroute > 0) {
      print_row("routed, re-routing every " + std::to_string(reroute) + " tokens", rerouted);
      if (unroutable_rerouted > 0)
        std::printf("  (%lld documents re-routed to paths not in the export are left out)\n",
                    static_cast<long long>(unroutable_rerouted));
    }
  } else {
    std::printf("  routed: not available (%s)\n", chooser.status().message().c_str());
  }
  if (models.size() > 1) print_row("best path per document (oracle)", oracle);
  if (dense_model) print_row("dense " + dense, dense_sum);
  return kExitOk;
}

}  // namespace dipaco::cli
