// The inference side of export: sampling and generation are deterministic under a seed,
// perplexity windows count every prediction once, JSON and half-precision helpers, and the
// path chooser's errors.
#include <QtTest>
#include <cmath>
#include <set>

#include "backend/cpu/cpu_backend.h"
#include "export/generate.h"
#include "export/half.h"
#include "export/json_value.h"
#include "export/path_chooser.h"
#include "export/perplexity.h"
#include "export/sampler.h"
#include "export_fixture.h"
#include "test_support.h"

namespace {
std::unique_ptr<dipaco::Model> tiny_model(dipaco::Backend* be, uint64_t seed) {
  auto c = export_fixture::tiny_config();
  auto model = dipaco::Model::create(be, c, 1, c.max_seq_len);
  model.value()->set_params(export_fixture::random_params(c, seed));
  return std::move(model).value();
}
}  // namespace

class ExportInferenceTest : public QObject {
  Q_OBJECT

 private slots:
  void samplerIsDeterministicAndRespectsTopK() {
    std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.5f, 1.9f, 0.0f};
    dipaco::SamplingOptions o;
    o.temperature = 1.0;
    o.top_k = 3;
    o.top_p = 1.0;
    o.seed = 42;
    dipaco::Sampler a(o), b(o);
    std::set<int32_t> seen;
    for (int i = 0; i < 200; ++i) {
      int32_t x = a.sample(logits.data(), 6);
      QCOMPARE(x, b.sample(logits.data(), 6));
      seen.insert(x);
    }
    QCOMPARE(seen, (std::set<int32_t>{1, 3, 4}));  // the three largest logits only
    o.top_k = 0;
    o.top_p = 0.3;  // token 1 alone has ~0.33 of the mass
    dipaco::Sampler nucleus(o);
    for (int i = 0; i < 50; ++i) QCOMPARE(nucleus.sample(logits.data(), 6), 1);
    o.temperature = 0;
    dipaco::Sampler greedy(o);
    QCOMPARE(greedy.sample(logits.data(), 6), 1);
  }

  void generateIsDeterministicUnderASeed() {
    dipaco::CpuBackend be(1);
    auto model = tiny_model(&be, 5);
    dipaco::GenerateOptions o;
    o.max_new_tokens = 40;  // longer than the context: exercises the sliding window
    o.eos_id = -1;
    o.sampling.temperature = 1.0;
    o.sampling.seed = 9;
    std::vector<int32_t> prompt = {1, 17, 33};
    std::vector<int32_t> streamed;
    auto a = dipaco::generate_tokens(*model, prompt, o, [&](int32_t t) { streamed.push_back(t); });
    auto b = dipaco::generate_tokens(*model, prompt, o, nullptr);
    QVERIFY(a.is_ok() && b.is_ok());
    QCOMPARE(a->size(), size_t{40});
    QCOMPARE(*a, *b);
    QCOMPARE(streamed, *a);
    o.sampling.seed = 10;
    auto c = dipaco::generate_tokens(*model, prompt, o, nullptr);
    QVERIFY(*c != *a);
    // Greedy: each token is the argmax of the model's logits on the context so far.
    o.sampling.temperature = 0;
    o.max_new_tokens = 3;
    auto g = dipaco::generate_tokens(*model, prompt, o, nullptr);
    std::vector<int32_t> ctx = prompt;
    for (int32_t t : *g) {
      model->forward(ctx.data(), nullptr, 1, static_cast<int>(ctx.size()));
      auto logits = model->get_logits();
      const float* last = logits.data() + (ctx.size() - 1) * export_fixture::kVocab;
      QCOMPARE(t,
               static_cast<int32_t>(std::max_element(last, last + export_fixture::kVocab) - last));
      ctx.push_back(t);
    }
    QVERIFY(!dipaco::generate_tokens(*model, {}, o, nullptr).is_ok());
    QVERIFY(!dipaco::generate_tokens(*model, {export_fixture::kVocab}, o, nullptr).is_ok());
  }

  void perplexityWindowsPredictEveryTokenOnce() {
    dipaco::CpuBackend be(1);
    auto model = tiny_model(&be, 6);
    const int T = model->max_seq_len();
    std::vector<int32_t> doc(2 * T + 7);
    for (size_t i = 0; i < doc.size(); ++i) doc[i] = static_cast<int32_t>((i * 13 + 1) % 300);
    auto sum = dipaco::document_nll(*model, doc);
    QCOMPARE(sum.tokens, static_cast<int64_t>(doc.size() - 1));
    // Same as scoring the three windows by hand.
    double expect = 0;
    for (size_t start : {size_t{0}, size_t(T), size_t(2 * T)}) {
      size_t n = std::min<size_t>(T, doc.size() - 1 - start);
      std::vector<int32_t> targets(doc.begin() + start + 1, doc.begin() + start + 1 + n);
      expect += model->forward(doc.data() + start, targets.data(), 1, static_cast<int>(n)) * n;
    }
    QVERIFY(std::fabs(sum.nll - expect) < 1e-9 * std::fabs(expect));
    QCOMPARE(dipaco::document_nll(*model, std::vector<int32_t>{5}).tokens, int64_t{0});
  }

  void tokenNllSumsToTheDocumentNll() {
    dipaco::CpuBackend be(1);
    auto model = tiny_model(&be, 6);
    std::vector<int32_t> doc(2 * model->max_seq_len() + 3);
    for (size_t i = 0; i < doc.size(); ++i) doc[i] = static_cast<int32_t>((i * 29 + 4) % 300);
    auto per_token = dipaco::token_nll(*model, doc);
    QCOMPARE(per_token.size(), doc.size() - 1);
    double sum = 0;
    for (double x : per_token) sum += x;
    auto whole = dipaco::document_nll(*model, doc);
    QVERIFY2(std::fabs(sum - whole.nll) < 1e-5 * whole.nll,
             qPrintable(QString("%1 vs %2").arg(sum).arg(whole.nll)));
  }

  void generateAsksThePickerEveryRerouteInterval() {
    dipaco::CpuBackend be(1);
    auto a = tiny_model(&be, 5);
    auto b = tiny_model(&be, 8);
    dipaco::GenerateOptions o;
    o.max_new_tokens = 7;
    o.eos_id = -1;
    o.reroute_every = 3;
    o.sampling.seed = 2;
    std::vector<std::pair<size_t, bool>> calls;  // (context length, rerouting)
    auto picker = [&](const std::vector<int32_t>& context,
                      bool rerouting) -> dipaco::Result<dipaco::Model*> {
      calls.push_back({context.size(), rerouting});
      return calls.size() % 2 ? a.get() : b.get();
    };
    auto out = dipaco::generate_tokens(picker, {1, 5}, o, nullptr);
    QVERIFY(out.is_ok());
    QCOMPARE(out->size(), size_t{7});
    QCOMPARE(calls, (std::vector<std::pair<size_t, bool>>{{2, false}, {5, true}, {8, true}}));
    // Always the same model: the same tokens as the one-model overload.
    o.reroute_every = 2;
    auto same =
        dipaco::generate_tokens([&](const std::vector<int32_t>&,
                                    bool) -> dipaco::Result<dipaco::Model*> { return a.get(); },
                                {1, 5}, o, nullptr);
    QCOMPARE(*same, *dipaco::generate_tokens(*a, {1, 5}, o, nullptr));
  }

  void jsonValueParsesAndDumps() {
    auto v = dipaco::parse_json(
        " {\"a\": [1, 2.5, -3e2], \"b\": {\"c\": null, \"d\": true}, \"s\": \"x\\u00e9\\n\"} ");
    QVERIFY2(v.is_ok(), v.status().message().c_str());
    QCOMPARE(v->find("a")->items().size(), size_t{3});
    QCOMPARE(v->find("a")->items()[2].as_number(), -300.0);
    QVERIFY(v->find("b")->find("c")->is_null());
    QCOMPARE(v->find("s")->as_string(), std::string("x\xc3\xa9\n"));
    auto again = dipaco::parse_json(v->dump());
    QVERIFY(again.is_ok());
    QCOMPARE(again->dump(-1), v->dump(-1));
    QCOMPARE(v->dump(-1), std::string("{\"a\":[1,2.5,-300],\"b\":{\"c\":null,\"d\":true},"
                                      "\"s\":\"x\xc3\xa9\\n\"}"));
    QCOMPARE(dipaco::JsonValue::number(1e-5).dump(-1), std::string("1e-05"));
    QCOMPARE(dipaco::JsonValue::number(0.1).dump(-1), std::string("0.1"));
    QCOMPARE(dipaco::parse_json(dipaco::JsonValue::number(1.0 / 3).dump(-1))->as_number(), 1.0 / 3);
    for (const char* bad : {"{\"a\":1,}", "[1 2]", "{\"a\" 1}", "01", "\"open", "[1]x", ""}) {
      auto r = dipaco::parse_json(bad);
      QVERIFY2(!r.is_ok(), bad);
      QVERIFY2(dipaco::test::contains(r.status().message(), "invalid JSON at byte"), bad);
    }
  }

  void halfConversionRoundsToNearestEven() {
    QCOMPARE(dipaco::float_to_f16(1.0f), uint16_t{0x3c00});
    QCOMPARE(dipaco::float_to_f16(-2.0f), uint16_t{0xc000});
    QCOMPARE(dipaco::float_to_f16(65504.0f), uint16_t{0x7bff});
    QCOMPARE(dipaco::float_to_f16(65520.0f), uint16_t{0x7c00});  // rounds to infinity
    QCOMPARE(dipaco::float_to_f16(std::ldexp(1.0f, -24)), uint16_t{0x0001});
    QCOMPARE(dipaco::float_to_f16(std::ldexp(1.0f, -26)), uint16_t{0x0000});
    QCOMPARE(dipaco::float_to_f16(1.0f + std::ldexp(1.0f, -11)), uint16_t{0x3c00});  // tie: even
    QCOMPARE(dipaco::float_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), uint16_t{0x3c02});
    QVERIFY(std::isnan(dipaco::f16_to_float(dipaco::float_to_f16(NAN))));
    // Every finite half survives half -> float -> half.
    for (uint32_t h = 0; h < 0x10000; ++h) {
      if ((h & 0x7c00) == 0x7c00) continue;
      QCOMPARE(dipaco::float_to_f16(dipaco::f16_to_float(static_cast<uint16_t>(h))),
               static_cast<uint16_t>(h));
    }
  }

  void pathChooserNeedsAPathOrOneOfThem() {
    dipaco::OpenedExport ex;
    ex.dir = "exp";
    ex.paths = {{0, "exp/path-0"}, {3, "exp/path-3"}};
    ex.router.kind = "kmeans";
    auto none = dipaco::make_path_chooser(ex, std::nullopt, nullptr);
    QVERIFY(!none.is_ok());
    QVERIFY2(dipaco::test::contains(none.status().message(), "--path"),
             none.status().message().c_str());
    auto bad = dipaco::make_path_chooser(ex, 2, nullptr);
    QVERIFY(!bad.is_ok());
    QVERIFY2(dipaco::test::contains(bad.status().message(), "no path 2 (its paths: 0, 3)"),
             bad.status().message().c_str());
    auto fixed = dipaco::make_path_chooser(ex, 3, nullptr);
    QVERIFY(fixed.is_ok());
    QCOMPARE(*(*fixed)->choose(std::vector<int32_t>{1, 2}), 3);
    ex.paths.resize(1);
    auto single = dipaco::make_path_chooser(ex, std::nullopt, nullptr);
    QVERIFY(single.is_ok());
    QCOMPARE(*(*single)->choose(std::vector<int32_t>{1}), 0);
  }
};

QTEST_GUILESS_MAIN(ExportInferenceTest)
#include "test_export_inference.moc"
