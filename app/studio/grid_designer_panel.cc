#include "grid_designer_panel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QTableWidget>
#include <QVBoxLayout>
#include <cmath>

#include "data/token_file.h"
#include "error_key.h"
#include "util/atomic_file.h"

namespace dipaco::studio {

namespace {

constexpr int kIntMax = 1 << 30;
const char* const kErrorStyle = "border: 2px solid #d03030;";

const OuterOptimizerKind kOuterKinds[] = {OuterOptimizerKind::kNesterov, OuterOptimizerKind::kSgd,
                                          OuterOptimizerKind::kAdam};
const WireDtype kDtypes[] = {WireDtype::kFp32, WireDtype::kBf16, WireDtype::kInt8,
                             WireDtype::kInt4};
const RoutingMethod kMethods[] = {RoutingMethod::kKMeans, RoutingMethod::kProductKMeans,
                                  RoutingMethod::kDiscriminative, RoutingMethod::kRandom};

QString qs(const std::string& s) {
  return QString::fromStdString(s);
}

}  // namespace

QSpinBox* GridDesignerPanel::int_field(const QString& key, int min, int max) {
  auto* w = new QSpinBox(this);
  w->setRange(min, max);
  w->setObjectName(key);
  w->setAccelerated(true);
  connect(w, &QSpinBox::valueChanged, this, [this] { refresh(); });
  fields_.insert(key, w);
  return w;
}

QDoubleSpinBox* GridDesignerPanel::double_field(const QString& key, double min, double max,
                                                int decimals) {
  auto* w = new QDoubleSpinBox(this);
  w->setRange(min, max);
  w->setDecimals(decimals);
  w->setSingleStep(std::pow(10.0, -decimals + 1));
  w->setObjectName(key);
  connect(w, &QDoubleSpinBox::valueChanged, this, [this] { refresh(); });
  fields_.insert(key, w);
  return w;
}

QLineEdit* GridDesignerPanel::text_field(const QString& key) {
  auto* w = new QLineEdit(this);
  w->setObjectName(key);
  connect(w, &QLineEdit::textChanged, this, [this] { refresh(); });
  fields_.insert(key, w);
  return w;
}

GridDesignerPanel::GridDesignerPanel(QWidget* parent) : QWidget(parent) {
  auto* top = new QHBoxLayout(this);
  auto* left = new QVBoxLayout;
  auto* right = new QVBoxLayout;
  top->addLayout(left, 2);
  top->addLayout(right, 3);

  auto group = [this](const QString& title, QVBoxLayout* column) {
    auto* box = new QGroupBox(title, this);
    auto* form = new QFormLayout(box);
    form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
    column->addWidget(box);
    return form;
  };

  QFormLayout* run = group(tr("Run"), left);
  run->addRow(tr("name"), text_field(QStringLiteral("run.name")));
  run->addRow(tr("directory"), text_field(QStringLiteral("run.dir")));
  run->addRow(tr("outer steps"), int_field(QStringLiteral("run.outer_steps"), 0, kIntMax));
  run->addRow(tr("inner steps H"), int_field(QStringLiteral("run.inner_steps"), 0, kIntMax));
  run->addRow(tr("local workers"), int_field(QStringLiteral("run.workers"), 0, 1024));
  run->addRow(tr("seed"), int_field(QStringLiteral("run.seed"), 0, kIntMax));

  QFormLayout* model = group(tr("Model"), left);
  auto* vocab = int_field(QStringLiteral("model.vocab_size"), 0, kIntMax);
  vocab->setSpecialValueText(tr("from the data"));
  model->addRow(tr("vocab size"), vocab);
  model->addRow(tr("d_model"), int_field(QStringLiteral("model.d_model"), 0, 1 << 16));
  model->addRow(tr("blocks (n_layers)"), int_field(QStringLiteral("model.n_layers"), 0, 1024));
  model->addRow(tr("heads"), int_field(QStringLiteral("model.n_heads"), 0, 1024));
  model->addRow(tr("kv heads"), int_field(QStringLiteral("model.n_kv_heads"), 0, 1024));
  model->addRow(tr("d_ff"), int_field(QStringLiteral("model.d_ff"), 0, 1 << 18));
  model->addRow(tr("max seq len"), int_field(QStringLiteral("model.max_seq_len"), 0, 1 << 20));

  QFormLayout* opt = group(tr("Optimizers and compression"), left);
  opt->addRow(tr("inner batch size"), int_field(QStringLiteral("inner.batch_size"), 0, 1 << 16));
  opt->addRow(tr("inner seq len"), int_field(QStringLiteral("inner.seq_len"), 0, 1 << 20));
  opt->addRow(tr("inner lr"), double_field(QStringLiteral("inner.lr"), 0, 10, 8));
  auto* outer_kind = new QComboBox(this);
  outer_kind->setObjectName(QStringLiteral("outer.optimizer"));
  for (OuterOptimizerKind k : kOuterKinds) outer_kind->addItem(QString(outer_optimizer_name(k)));
  connect(outer_kind, &QComboBox::currentIndexChanged, this, [this] { refresh(); });
  fields_.insert(QStringLiteral("outer.optimizer"), outer_kind);
  opt->addRow(tr("outer optimizer"), outer_kind);
  opt->addRow(tr("outer lr"), double_field(QStringLiteral("outer.lr"), 0, 100, 4));
  auto* dtype = new QComboBox(this);
  dtype->setObjectName(QStringLiteral("compression.dtype"));
  for (WireDtype d : kDtypes) dtype->addItem(QString(wire_dtype_name(d)));
  connect(dtype, &QComboBox::currentIndexChanged, this, [this] { refresh(); });
  fields_.insert(QStringLiteral("compression.dtype"), dtype);
  opt->addRow(tr("outer gradients as"), dtype);
  left->addStretch(1);

  // The grid.
  auto* grid_box =
      new QGroupBox(tr("Grid: levels × modules (a path picks one module per level)"), this);
  auto* grid_layout = new QVBoxLayout(grid_box);
  levels_ = new QTableWidget(0, 4, this);
  levels_->setObjectName(QStringLiteral("grid.level"));
  levels_->setHorizontalHeaderLabels(
      {tr("first block"), tr("last block"), tr("modules K"), tr("path-specific")});
  levels_->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
  levels_->verticalHeader()->setVisible(true);
  grid_layout->addWidget(levels_);
  fields_.insert(QStringLiteral("grid"), levels_);
  auto* level_buttons = new QHBoxLayout;
  auto* add = new QPushButton(tr("Add level"), this);
  auto* remove = new QPushButton(tr("Remove last level"), this);
  connect(add, &QPushButton::clicked, this, &GridDesignerPanel::add_level);
  connect(remove, &QPushButton::clicked, this, &GridDesignerPanel::remove_last_level);
  level_buttons->addWidget(add);
  level_buttons->addWidget(remove);
  level_buttons->addStretch(1);
  grid_layout->addLayout(level_buttons);
  auto* grid_form = new QFormLayout;
  grid_form->addRow(tr("shards per path"),
                    int_field(QStringLiteral("grid.shards_per_path"), 0, 4096));
  auto* method = new QComboBox(this);
  method->setObjectName(QStringLiteral("routing.method"));
  for (RoutingMethod m : kMethods) method->addItem(QString(routing_method_name(m)));
  connect(method, &QComboBox::currentIndexChanged, this, [this] { refresh(); });
  fields_.insert(QStringLiteral("routing.method"), method);
  grid_form->addRow(tr("routing"), method);
  grid_form->addRow(tr("routing base steps"),
                    int_field(QStringLiteral("routing.base_steps"), 0, kIntMax));
  auto* top2 = new QCheckBox(tr("top-2 overlapping shards"), this);
  top2->setObjectName(QStringLiteral("routing.top2"));
  connect(top2, &QCheckBox::toggled, this, [this] { refresh(); });
  fields_.insert(QStringLiteral("routing.top2"), top2);
  grid_form->addRow(QString(), top2);
  grid_form->addRow(tr("train tokens"), text_field(QStringLiteral("data.train")));
  grid_form->addRow(tr("validation tokens"), text_field(QStringLiteral("data.val")));
  grid_form->addRow(tr("tokenizer"), text_field(QStringLiteral("data.tokenizer")));
  grid_layout->addLayout(grid_form);
  paths_label_ = new QLabel(this);
  paths_label_->setWordWrap(true);
  grid_layout->addWidget(paths_label_);
  right->addWidget(grid_box, 3);

  auto* est_box = new QGroupBox(tr("Estimates"), this);
  auto* est_layout = new QVBoxLayout(est_box);
  estimates_label_ = new QLabel(this);
  estimates_label_->setObjectName(QStringLiteral("estimates"));
  estimates_label_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  est_layout->addWidget(estimates_label_);
  right->addWidget(est_box, 1);

  error_label_ = new QLabel(this);
  error_label_->setObjectName(QStringLiteral("validation"));
  error_label_->setWordWrap(true);
  right->addWidget(error_label_);
  auto* file_buttons = new QHBoxLayout;
  auto* open = new QPushButton(tr("Open grid…"), this);
  auto* save = new QPushButton(tr("Save grid as…"), this);
  connect(open, &QPushButton::clicked, this, &GridDesignerPanel::open_dialog);
  connect(save, &QPushButton::clicked, this, &GridDesignerPanel::save_dialog);
  file_buttons->addWidget(open);
  file_buttons->addWidget(save);
  file_buttons->addStretch(1);
  right->addLayout(file_buttons);

  // A small DiPaCo grid to start from: 2 × 2 modules, 4 paths.
  GridSpec start;
  start.name = "studio";
  start.dir = "runs/studio";
  start.levels = {{0, 1, 2, false}, {2, 3, 2, false}};
  set_spec(start);
}

void GridDesignerPanel::set_level_row(int row, const GridLevel& level) {
  auto spin = [this](int min, int max, int value) {
    auto* s = new QSpinBox(levels_);
    s->setRange(min, max);
    s->setValue(value);
    connect(s, &QSpinBox::valueChanged, this, [this] { refresh(); });
    return s;
  };
  levels_->setCellWidget(row, 0, spin(0, 1024, level.first_block));
  levels_->setCellWidget(row, 1, spin(-1, 1024, level.last_block));
  auto* modules = spin(1, 4096, std::max(level.modules, 1));
  modules->setEnabled(!level.path_specific);
  levels_->setCellWidget(row, 2, modules);
  auto* ps = new QCheckBox(levels_);
  ps->setChecked(level.path_specific);
  connect(ps, &QCheckBox::toggled, this, [this, modules](bool on) {
    modules->setEnabled(!on);
    refresh();
  });
  levels_->setCellWidget(row, 3, ps);
}

void GridDesignerPanel::add_level() {
  const int row = levels_->rowCount();
  GridLevel level;
  level.first_block = spec_.levels.empty() ? 0 : spec_.levels.back().last_block + 1;
  level.last_block = spec_.model.n_layers - 1;
  level.modules = 1;
  loading_ = true;
  levels_->insertRow(row);
  set_level_row(row, level);
  loading_ = false;
  refresh();
}

void GridDesignerPanel::remove_last_level() {
  if (levels_->rowCount() == 0) return;
  levels_->removeRow(levels_->rowCount() - 1);
  refresh();
}

void GridDesignerPanel::set_spec(const GridSpec& spec) {
  loading_ = true;
  spec_ = spec;
  auto set_int = [this](const char* key, long long v) {
    static_cast<QSpinBox*>(fields_.value(QString(key)))->setValue(static_cast<int>(v));
  };
  auto set_text = [this](const char* key, const std::string& v) {
    static_cast<QLineEdit*>(fields_.value(QString(key)))->setText(qs(v));
  };
  auto set_combo = [this](const char* key, const char* v) {
    auto* c = static_cast<QComboBox*>(fields_.value(QString(key)));
    c->setCurrentIndex(c->findText(QString(v)));
  };
  set_text("run.name", spec.name);
  set_text("run.dir", spec.dir);
  set_int("run.outer_steps", static_cast<long long>(spec.outer_steps));
  set_int("run.inner_steps", spec.inner_steps);
  set_int("run.workers", spec.workers);
  set_int("run.seed", static_cast<long long>(spec.seed));
  set_int("model.vocab_size", spec.vocab_from_data ? 0 : spec.model.vocab_size);
  set_int("model.d_model", spec.model.d_model);
  set_int("model.n_layers", spec.model.n_layers);
  set_int("model.n_heads", spec.model.n_heads);
  set_int("model.n_kv_heads", spec.model.n_kv_heads);
  set_int("model.d_ff", spec.model.d_ff);
  set_int("model.max_seq_len", spec.model.max_seq_len);
  set_int("inner.batch_size", spec.inner.batch_size);
  set_int("inner.seq_len", spec.inner.seq_len);
  static_cast<QDoubleSpinBox*>(fields_.value(QStringLiteral("inner.lr")))->setValue(spec.inner.lr);
  set_combo("outer.optimizer", outer_optimizer_name(spec.outer.kind));
  static_cast<QDoubleSpinBox*>(fields_.value(QStringLiteral("outer.lr")))
      ->setValue(static_cast<double>(spec.outer.lr));
  set_combo("compression.dtype", wire_dtype_name(spec.dtype));
  set_int("grid.shards_per_path", spec.shards_per_path);
  set_combo("routing.method", routing_method_name(spec.routing.method));
  set_int("routing.base_steps", spec.routing.base_steps);
  static_cast<QCheckBox*>(fields_.value(QStringLiteral("routing.top2")))
      ->setChecked(spec.routing.top2);
  set_text("data.train", spec.train_tokens);
  set_text("data.val", spec.val_tokens);
  set_text("data.tokenizer", spec.tokenizer);
  levels_->setRowCount(0);
  levels_->setRowCount(static_cast<int>(spec.levels.size()));
  for (size_t i = 0; i < spec.levels.size(); ++i)
    set_level_row(static_cast<int>(i), spec.levels[i]);
  loading_ = false;
  refresh();
}

void GridDesignerPanel::read_widgets() {
  auto get_int = [this](const char* key) {
    return static_cast<QSpinBox*>(fields_.value(QString(key)))->value();
  };
  auto get_text = [this](const char* key) {
    return static_cast<QLineEdit*>(fields_.value(QString(key)))->text().toStdString();
  };
  auto get_combo = [this](const char* key) {
    return static_cast<QComboBox*>(fields_.value(QString(key)))->currentIndex();
  };
  GridSpec& g = spec_;
  g.name = get_text("run.name");
  g.dir = get_text("run.dir");
  g.outer_steps = static_cast<uint64_t>(get_int("run.outer_steps"));
  g.inner_steps = static_cast<uint32_t>(get_int("run.inner_steps"));
  g.workers = get_int("run.workers");
  g.seed = static_cast<uint64_t>(get_int("run.seed"));
  const int vocab = get_int("model.vocab_size");
  g.vocab_from_data = vocab == 0;
  g.model.vocab_size = vocab == 0 ? ModelConfig{}.vocab_size : vocab;
  g.model.d_model = get_int("model.d_model");
  g.model.n_layers = get_int("model.n_layers");
  g.model.n_heads = get_int("model.n_heads");
  g.model.n_kv_heads = get_int("model.n_kv_heads");
  g.model.d_ff = get_int("model.d_ff");
  g.model.max_seq_len = get_int("model.max_seq_len");
  g.inner.batch_size = get_int("inner.batch_size");
  g.inner.seq_len = get_int("inner.seq_len");
  g.inner.lr = static_cast<QDoubleSpinBox*>(fields_.value(QStringLiteral("inner.lr")))->value();
  g.inner.steps = static_cast<int64_t>(g.outer_steps) * g.inner_steps;
  g.inner.seed = g.seed;
  g.aggregation.drop_seed = g.seed;
  const OuterOptimizerKind kind = kOuterKinds[std::max(0, get_combo("outer.optimizer"))];
  auto* outer_lr = static_cast<QDoubleSpinBox*>(fields_.value(QStringLiteral("outer.lr")));
  if (kind != g.outer.kind) {
    // Another optimizer: its own defaults (the lr too).
    g.outer = default_outer_config(kind);
    const bool was = loading_;
    loading_ = true;
    outer_lr->setValue(static_cast<double>(g.outer.lr));
    loading_ = was;
  }
  g.outer.lr = static_cast<float>(outer_lr->value());
  g.dtype = kDtypes[std::max(0, get_combo("compression.dtype"))];
  g.shards_per_path = get_int("grid.shards_per_path");
  g.routing.method = kMethods[std::max(0, get_combo("routing.method"))];
  g.routing.base_steps = get_int("routing.base_steps");
  g.routing.top2 =
      static_cast<QCheckBox*>(fields_.value(QStringLiteral("routing.top2")))->isChecked();
  g.train_tokens = get_text("data.train");
  g.val_tokens = get_text("data.val");
  g.tokenizer = get_text("data.tokenizer");
  g.levels.clear();
  for (int r = 0; r < levels_->rowCount(); ++r) {
    GridLevel l;
    l.first_block = static_cast<QSpinBox*>(levels_->cellWidget(r, 0))->value();
    l.last_block = static_cast<QSpinBox*>(levels_->cellWidget(r, 1))->value();
    l.modules = static_cast<QSpinBox*>(levels_->cellWidget(r, 2))->value();
    l.path_specific = static_cast<QCheckBox*>(levels_->cellWidget(r, 3))->isChecked();
    g.levels.push_back(l);
  }
  // As the parser does: a path-specific level has one module per path.
  long long shared = 1;
  for (const GridLevel& l : g.levels)
    if (!l.path_specific) shared *= l.modules;
  for (GridLevel& l : g.levels)
    if (l.path_specific) l.modules = static_cast<int>(std::min<long long>(shared, 1 << 20));
}

void GridDesignerPanel::refresh() {
  if (loading_) return;
  read_widgets();
  Status s = spec_.validate();
  error_ = s ? QString() : qs(s.message());
  error_key_ = s ? QString() : qs(dipaco::studio::error_key(s.message()));
  mark_error();
  if (s) {
    GridSpec sized = spec_;
    vocab_note_.clear();
    if (spec_.vocab_from_data) {
      const int v = data_vocab(spec_.train_tokens);
      if (v > 0) sized.model.vocab_size = v;
      vocab_note_ = v > 0 ? tr("vocabulary %1 from %2").arg(v).arg(qs(spec_.train_tokens))
                          : tr("vocabulary %1 assumed (%2 not readable)")
                                .arg(sized.model.vocab_size)
                                .arg(qs(spec_.train_tokens));
    }
    estimates_ = estimate_grid(sized);
    estimates_label_->setText(estimates_text());
    QStringList paths;
    for (int p = 0; p < std::min(spec_.num_paths(), 16); ++p) {
      QStringList mods;
      for (int id : spec_.path_modules(p)) mods << QString::number(id);
      paths << tr("path %1: modules %2").arg(p).arg(mods.join(QStringLiteral(", ")));
    }
    if (spec_.num_paths() > 16) paths << tr("… %1 paths in all").arg(spec_.num_paths());
    paths_label_->setText(
        tr("%1 paths, %2 modules. ").arg(spec_.num_paths()).arg(spec_.num_modules()) +
        paths.join(QStringLiteral("; ")));
  } else {
    estimates_label_->setText(tr("(fix the grid to see estimates)"));
    paths_label_->clear();
  }
  emit spec_changed(s.is_ok());
}

QString GridDesignerPanel::estimates_text() const {
  const GridEstimates& e = estimates_;
  auto b = [](uint64_t v) { return qs(human_bytes(static_cast<double>(v))); };
  auto ratio_to = [&](uint64_t bytes) {
    return bytes > 0 ? static_cast<double>(e.data_parallel_bytes_per_outer_step) /
                           static_cast<double>(bytes)
                     : 0.0;
  };
  QString text = tr("parameters per path: %1 (%2)\n"
                    "parameters in all modules: %3 (%4)\n"
                    "memory per worker: ~%5 (params × 16 B + activations %6)\n"
                    "per outer step: %7 up + %8 down = %9 (first step); %12 down as deltas "
                    "after = %13\n"
                    "data parallel, same tokens: %10 per outer step (%11× more; %14× after the "
                    "first step)")
                     .arg(qs(human_count(static_cast<double>(e.params_per_path))))
                     .arg(e.params_per_path)
                     .arg(qs(human_count(static_cast<double>(e.params_total))))
                     .arg(e.params_total)
                     .arg(b(e.worker_memory_bytes))
                     .arg(b(e.activation_bytes))
                     .arg(b(e.bytes_up_per_outer_step))
                     .arg(b(e.bytes_down_per_outer_step))
                     .arg(b(e.bytes_per_outer_step))
                     .arg(b(e.data_parallel_bytes_per_outer_step))
                     .arg(ratio_to(e.bytes_per_outer_step), 0, 'f', 0)
                     .arg(b(e.bytes_down_delta_per_outer_step))
                     .arg(b(e.bytes_steady_per_outer_step))
                     .arg(ratio_to(e.bytes_steady_per_outer_step), 0, 'f', 0);
  if (!vocab_note_.isEmpty()) text += QLatin1Char('\n') + vocab_note_;
  if (e.path_local_bytes_per_outer_step > 0)
    text += tr("\npath-specific modules travel whole in fp32, never compressed: %1 per outer step")
                .arg(b(e.path_local_bytes_per_outer_step));
  return text;
}

void GridDesignerPanel::mark_error() {
  if (error_widget_ != nullptr) {
    error_widget_->setStyleSheet(QString());
    error_widget_->setToolTip(QString());
  }
  for (int r = 0; r < levels_->rowCount(); ++r) {
    for (int c = 0; c < levels_->columnCount(); ++c)
      if (QWidget* w = levels_->cellWidget(r, c)) w->setStyleSheet(QString());
  }
  error_widget_ = nullptr;
  if (error_.isEmpty()) {
    error_label_->setText(tr("The grid is valid."));
    error_label_->setStyleSheet(QStringLiteral("color: #207020;"));
    return;
  }
  error_label_->setText(error_);
  error_label_->setStyleSheet(QStringLiteral("color: #d03030;"));
  QWidget* w = fields_.value(error_key_);
  const int level = error_level(error_key_.toStdString());
  if (w == nullptr && level >= 0 && level < levels_->rowCount()) {
    const int column = error_key_.endsWith(QStringLiteral(".modules")) ? 2 : 0;
    w = levels_->cellWidget(level, column);
  }
  if (w == nullptr && error_key_.startsWith(QStringLiteral("grid"))) w = levels_;
  if (w == nullptr) {
    // "routing.prefix_tokens" and other keys without a widget: the section's first field.
    const QString section = error_key_.section(QLatin1Char('.'), 0, 0);
    if (section == QStringLiteral("routing")) w = fields_.value(QStringLiteral("routing.method"));
  }
  if (w != nullptr) {
    w->setStyleSheet(QString::fromLatin1(kErrorStyle));
    w->setToolTip(error_);
  }
  error_widget_ = w;
}

int GridDesignerPanel::data_vocab(const std::string& path) {
  const QFileInfo info(qs(path));
  if (!info.isFile()) return 0;
  if (info.absoluteFilePath() == vocab_file_ && info.size() == vocab_size_bytes_ &&
      info.lastModified() == vocab_mtime_)
    return vocab_cached_;
  auto file = TokenFile::open(path);
  vocab_file_ = info.absoluteFilePath();
  vocab_size_bytes_ = info.size();
  vocab_mtime_ = info.lastModified();
  vocab_cached_ = file.is_ok() ? static_cast<int>(file->vocab_size()) : 0;
  return vocab_cached_;
}

bool GridDesignerPanel::open_file(const QString& path, QString* error) {
  auto spec = load_grid_spec(path.toStdString());
  if (!spec.is_ok()) {
    *error = qs(spec.status().message());
    return false;
  }
  set_spec(*spec);
  file_ = path;
  return true;
}

bool GridDesignerPanel::save_file(const QString& path, QString* error) {
  if (!valid()) {
    *error = tr("not saved: %1").arg(error_);
    return false;
  }
  if (Status s = write_file_atomically(path.toStdString(), spec_.to_toml()); !s) {
    *error = qs(s.message());
    return false;
  }
  file_ = path;
  return true;
}

void GridDesignerPanel::open_dialog() {
  const QString path =
      QFileDialog::getOpenFileName(this, tr("Open grid"), file_, tr("Grid TOML (*.toml)"));
  if (path.isEmpty()) return;
  QString error;
  if (!open_file(path, &error)) {
    error_label_->setText(error);
    error_label_->setStyleSheet(QStringLiteral("color: #d03030;"));
  }
}

void GridDesignerPanel::save_dialog() {
  const QString path =
      QFileDialog::getSaveFileName(this, tr("Save grid"), file_, tr("Grid TOML (*.toml)"));
  if (path.isEmpty()) return;
  QString error;
  if (!save_file(path, &error)) error_label_->setText(error);
}

}  // namespace dipaco::studio
