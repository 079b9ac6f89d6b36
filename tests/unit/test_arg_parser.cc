#include <QtTest>

#include "util/arg_parser.h"

using dipaco::ArgParser;

class ArgParserTest : public QObject {
  Q_OBJECT

 private slots:
  void parsesOptionsFlagsAndPositionals() {
    std::string out;
    int64_t vocab = 8000;
    double ratio = 0.1;
    bool force = false;
    std::string corpus;
    ArgParser p("dipaco data tokenize", "test");
    p.add_option("--out", "DIR", "output", &out);
    p.add_option("--vocab-size", "N", "vocab", &vocab, 16, 1 << 20);
    p.add_option("--val-fraction", "F", "validation", &ratio, 0.0, 0.5);
    p.add_flag("--force", "overwrite", &force);
    p.add_positional("CORPUS", "corpus", &corpus);
    QVERIFY(
        p.parse({"--out", "x", "--vocab-size=512", "brown", "--force", "--val-fraction", "0.25"}));
    QCOMPARE(out, std::string("x"));
    QCOMPARE(vocab, int64_t{512});
    QCOMPARE(ratio, 0.25);
    QVERIFY(force);
    QCOMPARE(corpus, std::string("brown"));
  }

  void unknownOptionSuggestsTheClosest() {
    std::string out;
    ArgParser p("dipaco data fetch", "test");
    p.add_option("--out", "DIR", "output", &out);
    dipaco::Status s = p.parse({"--otu", "x"});
    QVERIFY(!s);
    QVERIFY2(s.message().find("unknown option '--otu'") != std::string::npos, s.message().c_str());
    QVERIFY2(s.message().find("did you mean --out?") != std::string::npos, s.message().c_str());
  }

  void rangeAndTypeErrorsNameTheFlag() {
    int64_t vocab = 0;
    ArgParser p("cmd", "test");
    p.add_option("--vocab-size", "N", "vocab", &vocab, 16, 1000);
    dipaco::Status s = p.parse({"--vocab-size", "12x"});
    QVERIFY(!s);
    QVERIFY2(s.message().find("--vocab-size expects an integer") != std::string::npos,
             s.message().c_str());
    ArgParser q("cmd", "test");
    q.add_option("--vocab-size", "N", "vocab", &vocab, 16, 1000);
    s = q.parse({"--vocab-size", "4"});
    QVERIFY(!s);
    QVERIFY2(s.message().find("must be in [16, 1000]") != std::string::npos, s.message().c_str());
    QCOMPARE(vocab, int64_t{0});  // nothing changed on error
  }

  void missingValueAndMissingPositional() {
    std::string out, corpus;
    ArgParser p("cmd", "test");
    p.add_option("--out", "DIR", "output", &out);
    p.add_positional("CORPUS", "corpus", &corpus);
    dipaco::Status s = p.parse({"--out"});
    QVERIFY(!s);
    QVERIFY2(s.message().find("--out needs a value") != std::string::npos, s.message().c_str());
    ArgParser q("cmd", "test");
    q.add_positional("CORPUS", "corpus", &corpus);
    s = q.parse({});
    QVERIFY(!s);
    QVERIFY2(s.message().find("missing CORPUS") != std::string::npos, s.message().c_str());
  }

  void choicesAndExtraArguments() {
    std::string type = "bpe";
    ArgParser p("cmd", "test");
    p.add_choice("--model-type", {"bpe", "unigram"}, "type", &type);
    QVERIFY(p.parse({"--model-type", "unigram"}));
    QCOMPARE(type, std::string("unigram"));
    ArgParser q("cmd", "test");
    q.add_choice("--model-type", {"bpe", "unigram"}, "type", &type);
    dipaco::Status s = q.parse({"--model-type", "char"});
    QVERIFY(!s);
    QVERIFY2(s.message().find("one of bpe|unigram") != std::string::npos, s.message().c_str());
    ArgParser r("cmd", "test");
    s = r.parse({"stray"});
    QVERIFY(!s);
    QVERIFY2(s.message().find("unexpected argument 'stray'") != std::string::npos,
             s.message().c_str());
  }

  void helpSkipsRequiredChecksAndUsageListsEverything() {
    std::string corpus;
    std::vector<std::string> files;
    ArgParser p("dipaco data x", "Summary line.");
    p.add_positional("CORPUS", "the corpus", &corpus);
    p.add_positional_list("FILES", "input files", &files, 0);
    QVERIFY(p.parse({"--help"}));
    QVERIFY(p.help_requested());
    std::string usage = p.usage();
    QVERIFY(usage.find("usage: dipaco data x") != std::string::npos);
    QVERIFY(usage.find("CORPUS") != std::string::npos);
    QVERIFY(usage.find("Summary line.") != std::string::npos);
  }

  void positionalListTakesTheRest() {
    std::string first;
    std::vector<std::string> rest;
    ArgParser p("cmd", "test");
    p.add_positional("FIRST", "first", &first);
    p.add_positional_list("REST", "rest", &rest, 1);
    QVERIFY(p.parse({"a", "b", "--", "-c"}));
    QCOMPARE(first, std::string("a"));
    QCOMPARE(rest.size(), size_t{2});
    QCOMPARE(rest[1], std::string("-c"));
  }

  void editDistance() {
    QCOMPARE(dipaco::edit_distance("kitten", "sitting"), size_t{3});
    QCOMPARE(dipaco::edit_distance("", "abc"), size_t{3});
    QCOMPARE(dipaco::edit_distance("same", "same"), size_t{0});
  }
};

QTEST_GUILESS_MAIN(ArgParserTest)
#include "test_arg_parser.moc"
