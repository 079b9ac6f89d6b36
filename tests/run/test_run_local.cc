// Whole local runs on a tiny two-topic corpus: a 2×2 DiPaCo grid trains, evaluates with
// routing and writes what export reads; reruns resume; an interrupted run resumes to the same
// modules as an uninterrupted one; DiLoCo, path-specific levels, int4 with top-2 overlap and a
// discriminative router run; bad inputs are refused with errors that say what to change; a
// second run on a directory in use (by a run or by dipaco serve) is refused at once; a different
// grid is refused with the keys that differ; a failed first start leaves nothing behind.
#include <unistd.h>

#include <QTemporaryDir>
#include <QtTest>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>

#include "run/grid_run_hooks.h"
#include "run/local_run.h"
#include "run/module_delta.h"
#include "run/module_files.h"
#include "run/run_layout.h"
#include "run_test_data.h"
#include "store/sqlite_db.h"
#include "test_support.h"
#include "util/atomic_file.h"
#include "util/file_lock.h"
#include "util/sha256.h"

using namespace dipaco;
using dipaco::test::contains;
using dipaco::test::kTwoByTwo;
using dipaco::test::tiny_grid;

namespace {

const char* kFastRouting = "[routing]\nbase_steps = 20\n";

GridSpec grid_of(const std::string& text) {
  auto g = parse_grid_spec(text, "tiny.toml");
  if (!g) qFatal("%s", g.status().message().c_str());
  return std::move(g).value();
}

Result<LocalRunResult> run_quietly(const GridSpec& g, LocalRunOptions o = {}) {
  FILE* sink = std::fopen("/dev/null", "w");
  o.out = sink;
  auto r = run_local(g, o);
  std::fclose(sink);
  return r;
}

// Every file under `dir` with its contents: what a refused start must leave unchanged.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    const std::string name = entry.path().lexically_relative(dir).string();
    files[name] = entry.is_regular_file() ? read_file(entry.path().string()).value() : "<dir>";
  }
  return files;
}

double max_path_difference(const std::string& a_dir, const std::string& b_dir, int paths) {
  double diff = 0;
  for (int p = 0; p < paths; ++p) {
    auto a = read_path_model(RunLayout{a_dir}.path_model(static_cast<uint32_t>(p)));
    auto b = read_path_model(RunLayout{b_dir}.path_model(static_cast<uint32_t>(p)));
    if (!a || !b) return INFINITY;
    for (size_t i = 0; i < a->second.size(); ++i)
      diff = std::max(diff, static_cast<double>(std::fabs(a->second[i] - b->second[i])));
  }
  return diff;
}

}  // namespace

class RunLocalTest : public QObject {
  Q_OBJECT

 private:
  QTemporaryDir dir_;

 private slots:
  void initTestCase() { dipaco::test::write_tiny_corpus(dir_.path()); }

  void twoByTwoGridTrainsAndWritesItsPaths() {
    GridSpec g = grid_of(tiny_grid(dir_.path(), kTwoByTwo, kFastRouting));
    std::atomic<int> completed{0}, train_points{0}, val_points{0};
    LocalRunOptions o;
    o.on_event = [&](const RunEvent& e) {
      if (e.kind == EventKind::kLeaseCompleted) ++completed;
      if (e.kind == EventKind::kMetric && e.metric_name == "train_loss") ++train_points;
      if (e.kind == EventKind::kMetric && e.metric_name == "val_loss") ++val_points;
    };
    auto r = run_quietly(g, o);
    QVERIFY2(r, r.status().message().c_str());
    QCOMPARE(r->paths.size(), size_t{4});
    QCOMPARE(completed.load(), 12);  // 4 paths × 3 outer steps
    QCOMPARE(train_points.load(), 12);
    uint64_t docs = 0;
    int paths_with_val = 0;
    for (const PathResult& p : r->paths) {
      QCOMPARE(std::isfinite(p.val_loss), p.val_tokens > 0);
      paths_with_val += p.val_tokens > 0;
      docs += p.shard_documents;
    }
    QVERIFY(paths_with_val >= 2);
    // The routed loss is that of the kept models: their per-path losses weighted by tokens.
    double weighted = 0, tokens = 0;
    for (const PathResult& p : r->paths)
      if (p.val_tokens > 0) {
        weighted += p.val_loss * static_cast<double>(p.val_tokens);
        tokens += static_cast<double>(p.val_tokens);
      }
    QVERIFY(std::fabs(weighted / tokens - r->routed_val_loss) < 1e-3);
    QCOMPARE(val_points.load(), 3 * paths_with_val);
    QCOMPARE(docs, uint64_t{48});
    // Training helped: below the uniform prediction over 64 tokens.
    QVERIFY2(r->routed_val_loss < std::log(64.0) - 0.2, std::to_string(r->routed_val_loss).c_str());
    // Traffic: each of 12 tasks sends each of its two modules in int8.
    ModelConfig resolved = g.model;
    resolved.vocab_size = static_cast<int>(dipaco::test::kTinyVocab);  // from the data
    ParamLayout layout(resolved);
    uint64_t expect_up = 0;
    for (int p = 0; p < 4; ++p)
      for (int id : g.path_modules(p))
        expect_up += 3 * encoded_size(WireDtype::kInt8, g.module_range(layout, id).count);
    QCOMPARE(r->bytes_up, expect_up);
    // Data parallel: every one of the 12 × H inner steps exchanges an fp32 gradient both ways.
    QCOMPARE(r->data_parallel_bytes, uint64_t{12} * 4 * 2 * layout.total() * sizeof(float));
    QVERIFY(r->bytes_up * 10 < r->data_parallel_bytes);
    RunLayout l{g.dir};
    for (const std::string& f : {l.run_json(), l.summary(), l.router(), l.base_model(),
                                 l.path_model(3), l.module_version(3, 3), l.metrics()})
      QVERIFY2(std::filesystem::exists(f), f.c_str());
    // Old versions are collected; the initial one and the last two stay.
    QVERIFY(!std::filesystem::exists(l.module_version(3, 1)));
    QVERIFY(std::filesystem::exists(l.module_version(3, 0)));
    QVERIFY(std::filesystem::exists(l.module_version(3, 2)));
    auto json = read_file(l.run_json());
    QVERIFY(contains(*json, "\"format\": \"dipaco-run/1\""));
    QVERIFY(contains(*json, "\"kind\": \"kmeans\""));

    // Rerunning the finished grid resumes: nothing is trained again, the result is the same.
    completed = 0;
    auto again = run_quietly(g, o);
    QVERIFY2(again, again.status().message().c_str());
    QCOMPARE(completed.load(), 0);
    QCOMPARE(again->routed_val_loss, r->routed_val_loss);

    // More workers is the same run; a different grid in the same directory is refused.
    GridSpec wider = g;
    wider.workers = 2;
    auto resumed = run_quietly(wider, o);
    QVERIFY2(resumed, resumed.status().message().c_str());
    QCOMPARE(completed.load(), 0);

    // The refusal names every key that differs, and leaves the run's grid.toml as it was.
    const std::string grid_toml = read_file(l.grid()).value();
    GridSpec other = wider;  // run.workers differs too, which a resume allows
    other.inner.lr = 1e-3;
    other.outer_steps = 5;
    auto refused = run_quietly(other);
    QVERIFY(!refused);
    const std::string why = refused.status().message();
    QVERIFY2(contains(why, "different grid"), why.c_str());
    QVERIFY2(contains(why, "inner.lr: 0.003 in the run, 0.001 now"), why.c_str());
    QVERIFY2(contains(why, "run.outer_steps: 3 in the run, 5 now"), why.c_str());
    QVERIFY2(!contains(why, "run.workers:"), why.c_str());  // the same run, whatever the workers
    QCOMPARE(read_file(l.grid()).value(), grid_toml);

    // A discriminative router trained on which of these paths scores each document best.
    GridSpec disc = grid_of(tiny_grid(dir_.path(), kTwoByTwo,
                                      std::string(kFastRouting) +
                                          "method = \"discriminative\"\n"
                                          "paths_from = \"" +
                                          g.dir + "\"\n"));
    disc.dir = dir_.filePath("disc").toStdString();
    auto d = run_quietly(disc);
    QVERIFY2(d, d.status().message().c_str());
    QVERIFY(std::isfinite(d->routed_val_loss));
  }

  void interruptedRunResumesToTheSameModules() {
    GridSpec a = grid_of(tiny_grid(dir_.path(), kTwoByTwo, kFastRouting));
    a.dir = dir_.filePath("whole").toStdString();
    QVERIFY(run_quietly(a));
    GridSpec b = a;
    b.dir = dir_.filePath("interrupted").toStdString();
    std::atomic<bool> stop{false};
    std::atomic<int> completed{0};
    LocalRunOptions o;
    o.stop = &stop;
    o.on_event = [&](const RunEvent& e) {
      if (e.kind == EventKind::kLeaseCompleted && ++completed == 5) stop = true;
    };
    auto first = run_quietly(b, o);
    QVERIFY2(first, first.status().message().c_str());
    QVERIFY(first->interrupted);
    {
      // The operator drained every local worker before the stop (the studio's dashboard): the
      // resumed run's workers are new and take tasks again.
      auto db = dipaco::SqliteDb::open(dipaco::RunLayout{b.dir}.database());
      QVERIFY(db.is_ok());
      QVERIFY(db->exec("UPDATE workers SET state = 'draining'").is_ok());
    }
    auto rest = run_quietly(b);
    QVERIFY2(rest, rest.status().message().c_str());
    QVERIFY(!rest->interrupted);
    double diff = max_path_difference(a.dir, b.dir, 4);
    QVERIFY2(diff < 1e-5, std::to_string(diff).c_str());
  }

  void quantizedDownlinkPublishesWhatWorkersRebuild() {
    // One worker: after the first outer step it holds every module's previous version, so each
    // later step fetches every module once, as an int8 delta.
    GridSpec g = grid_of(tiny_grid(dir_.path(), kTwoByTwo, kFastRouting));
    g.dir = dir_.filePath("downlink-int8").toStdString();
    QCOMPARE(g.downlink, WireDtype::kInt8);
    auto r = run_quietly(g);
    QVERIFY2(r, r.status().message().c_str());
    ModelConfig resolved = g.model;
    resolved.vocab_size = static_cast<int>(dipaco::test::kTinyVocab);
    ParamLayout pl(resolved);
    RunLayout l{g.dir};
    uint64_t whole = 0, deltas = 0;
    for (int id = 0; id < g.num_modules(); ++id) {
      const auto m = static_cast<uint32_t>(id);
      const size_t n = g.module_range(pl, id).count;
      whole += n * sizeof(float);
      deltas += encoded_size(WireDtype::kInt8, n);
      // Version 3 rebuilt from version 2 and its delta is the stored version 3, bit for bit:
      // the same values, and written out, the same file the coordinator recorded.
      auto v2 = read_module_version(l.module_version(m, 2), m, n);
      auto delta = read_module_delta(l.module_delta(m, 3), m, 3, n);
      QVERIFY2(v2 && delta, "version 2 or the delta to version 3 is missing");
      auto rebuilt = rebuild_module_version(*delta, *v2);
      QVERIFY2(rebuilt, rebuilt.status().message().c_str());
      const std::string copy = dir_.filePath("rebuilt.safetensors").toStdString();
      auto sha = write_module_version(copy, m, 3, *rebuilt);
      QVERIFY(sha);
      QCOMPARE(*sha, *sha256_file_hex(l.module_version(m, 3)));
      QCOMPARE(delta->target_sha256, *sha);
      // The quantization error not yet sent is kept with the outer optimizer's state.
      std::vector<float> residual;
      QVERIFY(read_outer_state(l.outer_state(m, 3), &residual));
      QCOMPARE(residual.size(), n);
      QVERIFY(std::any_of(residual.begin(), residual.end(), [](float x) { return x != 0.0f; }));
    }
    // Bytes counted as they moved: step 1 whole versions, steps 2 and 3 one delta per module.
    QCOMPARE(r->bytes_down, whole + 2 * deltas);
    auto json = read_file(l.run_json());
    QVERIFY(contains(*json, "\"bytes_down\": " + std::to_string(whole + 2 * deltas)));
    QVERIFY(contains(*json, "\"downlink\": \"int8\", \"counted\": \"measured\""));
    auto metrics = read_file(l.metrics());
    QVERIFY(contains(*metrics, "\"outer_step\": 1, \"bytes_up\": "));
    QVERIFY(contains(*metrics, "\"bytes_down\": " + std::to_string(whole) + ","));
    QVERIFY(contains(*metrics, "\"bytes_down\": " + std::to_string(deltas) + ","));

    // The fp32 downlink moves whole versions every step and writes no deltas.
    GridSpec fp32 = g;
    fp32.downlink = WireDtype::kFp32;
    fp32.dir = dir_.filePath("downlink-fp32").toStdString();
    auto f = run_quietly(fp32);
    QVERIFY2(f, f.status().message().c_str());
    QCOMPARE(f->bytes_down, 3 * whole);
    QCOMPARE(f->bytes_up, r->bytes_up);
    QVERIFY(!std::filesystem::exists(RunLayout{fp32.dir}.module_delta(0, 3)));
    // Quantizing the downlink costs little: the routed loss stays close to fp32's.
    QVERIFY2(
        std::fabs(r->routed_val_loss - f->routed_val_loss) < 0.05,
        (std::to_string(r->routed_val_loss) + " vs " + std::to_string(f->routed_val_loss)).c_str());
  }

  void diLoCoPathSpecificAndInt4Variants() {
    // DiLoCo: one module, two iid replicas.
    GridSpec diloco = grid_of(tiny_grid(dir_.path(), "[grid]\nshards_per_path = 2\n",
                                        std::string(kFastRouting) + "method = \"iid\"\n"));
    diloco.dir = dir_.filePath("diloco").toStdString();
    auto r = run_quietly(diloco);
    QVERIFY2(r, r.status().message().c_str());
    QCOMPARE(r->paths.size(), size_t{1});
    QCOMPARE(r->paths[0].shard_documents, uint64_t{48});
    // Two paths sharing level 0, each with its own level 1; int4 with top-2 overlap.
    GridSpec ps = grid_of(tiny_grid(
        dir_.path(),
        "[[grid.level]]\nblocks = [0, 0]\nmodules = 2\n\n[[grid.level]]\nblocks = [1, 1]\n"
        "path_specific = true\n",
        std::string(kFastRouting) + "top2 = true\n\n[compression]\ndtype = \"int4\"\n"));
    ps.dir = dir_.filePath("path-specific").toStdString();
    auto p = run_quietly(ps);
    QVERIFY2(p, p.status().message().c_str());
    QCOMPARE(p->paths.size(), size_t{2});
    QCOMPARE(p->paths[0].shard_documents + p->paths[1].shard_documents, uint64_t{96});
    QVERIFY(p->bytes_path_local > 0);
    QVERIFY(std::isfinite(p->routed_val_loss));
  }

  // Each local worker an island of 2 CPU replicas (the code path of GPUs per worker): the run
  // trains the same paths as one replica per worker, up to the island's summation order.
  void workersAsIslandsTrainTheSamePaths() {
    GridSpec single = grid_of(tiny_grid(dir_.path(), kTwoByTwo, kFastRouting));
    single.dir = dir_.filePath("island-single").toStdString();
    LocalRunOptions on_cpu;
    on_cpu.backend.kind = BackendChoice::Kind::kCpu;  // like the island, also on a GPU host
    QVERIFY(run_quietly(single, on_cpu));
    GridSpec island = single;
    island.dir = dir_.filePath("island-pairs").toStdString();
    LocalRunOptions o;
    o.backend.kind = BackendChoice::Kind::kCpu;
    o.backend.cpu_replicas = 2;
    char* printed = nullptr;
    size_t printed_size = 0;
    o.out = open_memstream(&printed, &printed_size);
    auto r = run_local(island, o);
    std::fclose(o.out);
    const std::string output(printed, printed_size);
    std::free(printed);
    QVERIFY2(r, r.status().message().c_str());
    QVERIFY2(contains(output, "local workers: 1, each an island of 2 CPU replicas"),
             output.c_str());
    QVERIFY(std::isfinite(r->routed_val_loss));
    const double diff = max_path_difference(single.dir, island.dir, 4);
    std::printf("  island of 2 vs one replica: largest parameter difference %.3g\n", diff);
    QVERIFY2(diff < 1e-3, std::to_string(diff).c_str());

    // GPUs per worker on the CPU backend: refused before anything is written.
    GridSpec refused = single;
    refused.dir = dir_.filePath("island-refused").toStdString();
    LocalRunOptions bad;
    bad.backend.kind = BackendChoice::Kind::kCpu;
    bad.gpus_per_worker = 2;
    auto no = run_quietly(refused, bad);
    QVERIFY(!no);
    QVERIFY2(contains(no.status().message(), "2 GPUs per worker needs the backend cuda or auto"),
             no.status().message().c_str());
    QVERIFY(!std::filesystem::exists(refused.dir));
  }

  void aSecondRunOnTheSameDirectoryIsRefusedAtOnce() {
    GridSpec g = grid_of(tiny_grid(dir_.path(), kTwoByTwo, kFastRouting));
    g.dir = dir_.filePath("locked").toStdString();
    g.outer_steps = 1;
    // Held by another process (as far as the lock file says): refused, nothing written.
    std::filesystem::create_directories(g.dir);
    {
      auto held = FileLock::try_lock(RunLayout{g.dir}.lock(), "pid 4242\n");
      QVERIFY2(held, held.status().message().c_str());
      const auto before = snapshot(g.dir);
      auto refused = run_quietly(g);
      QVERIFY(!refused);
      const std::string expected =
          "run.dir " + g.dir + " is in use by another dipaco process (pid 4242)";
      QVERIFY2(contains(refused.status().message(), expected), refused.status().message().c_str());
      QCOMPARE(refused.status().code(), StatusCode::kFailedPrecondition);
      QCOMPARE(snapshot(g.dir), before);
    }
    // While a run is going, a second run_local on its directory is refused with this pid; the
    // first one finishes undisturbed.
    std::string second_error;
    std::atomic<int> completed{0};
    LocalRunOptions o;
    o.on_started = [&](Coordinator*, int64_t) {
      auto second = run_quietly(g);
      second_error = second ? "started" : second.status().message();
    };
    o.on_event = [&](const RunEvent& e) {
      if (e.kind == EventKind::kLeaseCompleted) ++completed;
    };
    auto first = run_quietly(g, o);
    QVERIFY2(first, first.status().message().c_str());
    QVERIFY2(contains(second_error, "is in use by another dipaco process (dipaco run, pid " +
                                        std::to_string(getpid()) + ")"),
             second_error.c_str());
    QCOMPARE(completed.load(), 4);  // 4 paths × 1 outer step, each trained once
    // Released when run_local returns: the same command resumes.
    QVERIFY2(run_quietly(g), "rerun after the first finished");
  }

  // dipaco serve plans a grid run into its run.dir under the same lock as dipaco run, and holds
  // it while it serves the run: a run on that directory is refused naming serve (planning the
  // same grid again inside serve is fine), and serve planning into a directory a run holds is
  // refused naming the run.
  void serveAndRunNeverOwnTheSameDirectory() {
    GridSpec g = grid_of(tiny_grid(dir_.path(), kTwoByTwo, kFastRouting));
    g.dir = dir_.filePath("served").toStdString();
    g.outer_steps = 1;
    FILE* sink = std::fopen("/dev/null", "w");
    const std::string pid = std::to_string(getpid());
    CoordinatorOptions served;
    served.db_path = dir_.filePath("serve.db").toStdString();
    served.payload_dir = dir_.filePath("serve.payload").toStdString();
    std::filesystem::create_directories(served.payload_dir);
    {
      RunHooks hooks = grid_run_hooks(1, sink, std::make_shared<RunDirLocks>("dipaco serve"));
      auto planned = hooks.plan_run(g.to_toml());
      QVERIFY2(planned, planned.status().message().c_str());
      auto coordinator = Coordinator::open(served);
      QVERIFY2(coordinator, coordinator.status().message().c_str());
      QVERIFY((*coordinator)->create_run(*planned));
      auto again = hooks.plan_run(g.to_toml());  // a second CreateRun of the same grid
      QVERIFY2(again, again.status().message().c_str());
      auto refused = run_quietly(g);
      QVERIFY(!refused);
      QCOMPARE(refused.status().code(), StatusCode::kFailedPrecondition);
      QVERIFY2(contains(refused.status().message(),
                        "run.dir " + g.dir +
                            " is in use by another dipaco process (dipaco serve, pid " + pid + ")"),
               refused.status().message().c_str());
    }
    // A restarted serve owns the directories of the runs its database resumes.
    {
      auto coordinator = Coordinator::open(served);
      QVERIFY2(coordinator, coordinator.status().message().c_str());
      RunDirLocks restarted("dipaco serve");
      QVERIFY(lock_served_run_dirs(**coordinator, restarted));
      auto refused = run_quietly(g);
      QVERIFY2(contains(refused.status().message(), "(dipaco serve, pid " + pid + ")"),
               refused.status().message().c_str());
    }
    // Released with the hooks (serve exits): the run resumes there; while it runs, serve's
    // planning into the directory is refused.
    std::string serve_error;
    LocalRunOptions o;
    o.on_started = [&](Coordinator*, int64_t) {
      RunHooks hooks = grid_run_hooks(1, sink, std::make_shared<RunDirLocks>("dipaco serve"));
      auto planned = hooks.plan_run(g.to_toml());
      serve_error = planned ? "planned" : planned.status().message();
    };
    auto ran = run_quietly(g, o);
    std::fclose(sink);
    QVERIFY2(ran, ran.status().message().c_str());
    QVERIFY2(
        contains(serve_error, "is in use by another dipaco process (dipaco run, pid " + pid + ")"),
        serve_error.c_str());
  }

  void aFailedFirstStartDoesNotClaimTheDirectory() {
    GridSpec g = grid_of(tiny_grid(dir_.path(), kTwoByTwo, kFastRouting));
    g.dir = dir_.filePath("typo").toStdString();
    g.outer_steps = 1;
    GridSpec typo = g;
    typo.routing.base_checkpoint = dir_.filePath("no-such-checkpoint.safetensors").toStdString();
    auto failed = run_quietly(typo);
    QVERIFY(!failed);
    QVERIFY2(contains(failed.status().message(), "no-such-checkpoint"),
             failed.status().message().c_str());
    const RunLayout l{g.dir};
    QVERIFY(!std::filesystem::exists(l.grid()));
    QVERIFY(!std::filesystem::exists(l.shards_dir()));
    QVERIFY(!std::filesystem::exists(l.payload_dir()));
    QVERIFY2(!std::filesystem::exists(g.dir), "the run directory (and its .lock) is left behind");
    // A directory that existed (empty) is left as it was: empty, no .lock in it.
    std::filesystem::create_directories(g.dir);
    failed = run_quietly(typo);
    QVERIFY(!failed);
    QVERIFY(std::filesystem::exists(g.dir));
    QVERIFY2(std::filesystem::is_empty(g.dir), "a failed first start left files behind");
    // The fixed grid starts fresh in the same directory.
    auto fixed = run_quietly(g);
    QVERIFY2(fixed, fixed.status().message().c_str());
    QVERIFY(std::filesystem::exists(l.grid()));
  }

  void badInputsSayWhatToChange() {
    GridSpec g = grid_of(tiny_grid(dir_.path(), kTwoByTwo, kFastRouting));
    g.dir = dir_.filePath("bad").toStdString();
    GridSpec missing = g;
    missing.train_tokens = dir_.filePath("missing.tok").toStdString();
    QVERIFY(contains(run_quietly(missing).status().message(), "dipaco data tokenize"));
    GridSpec crowded = grid_of(
        tiny_grid(dir_.path(), "[[grid.level]]\nblocks = [0, 1]\nmodules = 64\n", kFastRouting));
    crowded.dir = dir_.filePath("crowded").toStdString();
    QVERIFY(contains(run_quietly(crowded).status().message(), "fewer than the 64"));

    // Warm start from a dense checkpoint of the same model; another model is refused.
    GridSpec base_run = grid_of(tiny_grid(dir_.path(), "[[grid.level]]\nblocks = [0, 1]\n",
                                          "[routing]\nmethod = \"random\"\n"
                                          "[outer]\noptimizer = \"sgd\"\n"));
    base_run.warm_start = false;
    base_run.dir = dir_.filePath("dense").toStdString();
    auto dense = run_quietly(base_run);
    QVERIFY2(dense, dense.status().message().c_str());
    GridSpec warm = g;
    warm.dir = dir_.filePath("warm").toStdString();
    warm.routing.base_checkpoint = RunLayout{base_run.dir}.path_model(0);
    auto w = run_quietly(warm);
    QVERIFY2(w, w.status().message().c_str());
    auto base = read_path_model(RunLayout{warm.dir}.base_model());
    auto source = read_path_model(warm.routing.base_checkpoint);
    QVERIFY(base && source && base->second == source->second);
    GridSpec wider = warm;
    wider.dir = dir_.filePath("wider").toStdString();
    wider.model.d_model = 64;
    QVERIFY(contains(run_quietly(wider).status().message(), "must match"));
  }
};

QTEST_GUILESS_MAIN(RunLocalTest)
#include "test_run_local.moc"
