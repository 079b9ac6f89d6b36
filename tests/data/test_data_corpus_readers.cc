#include <QTemporaryDir>
#include <QtTest>
#include <map>

#include "data/brown_corpus.h"
#include "data/brown_fetch.h"
#include "data/documents_file.h"
#include "data/gzip_reader.h"
#include "data/tar_reader.h"
#include "data/text_corpus.h"
#include "data_fixtures.h"
#include "test_support.h"

using dipaco::Document;

namespace {

using dipaco::test::contains;

dipaco::CorpusOptions quiet(dipaco::TxtMode mode = dipaco::TxtMode::kBlocks) {
  dipaco::CorpusOptions options;
  options.txt_mode = mode;
  options.show_progress = false;
  return options;
}

}  // namespace

class CorpusReadersTest : public QObject {
  Q_OBJECT

 private slots:
  void brownFormCToText() {
    std::string text = dipaco::brown_form_c_to_text(fixtures::brown_form_c());
    QCOMPARE(text, std::string("The jury said \"no evidence\" was found. It asked (again), and "
                               "1/2 cups; why?\n\nMerger proposed\n\nHowever, the city's mayor "
                               "didn't agree: no!"));
  }

  void brownCategoriesAndDocuments() {
    std::map<std::string, std::string> files = {
        {"cats.txt", "ca01 news\ncb02 editorial\n\n"},
        {"ca01", fixtures::brown_form_c()},
        {"cb02", "\n\tA/at short/jj one/cd ./.\n"},
    };
    auto docs = dipaco::brown_documents(files, "pkg");
    QVERIFY2(docs.is_ok(), docs.status().message().c_str());
    QCOMPARE(docs->size(), size_t{2});
    QCOMPARE((*docs)[1].id, std::string("cb02"));
    QCOMPARE((*docs)[1].category, std::string("editorial"));
    QCOMPARE((*docs)[1].text, std::string("A short one."));

    files.erase("cb02");
    docs = dipaco::brown_documents(files, "pkg");
    QVERIFY(!docs.is_ok());
    QVERIFY2(contains(docs.status().message(), "cats.txt lists cb02 but the file is missing"),
             docs.status().message().c_str());

    auto cats = dipaco::parse_brown_categories("ca01 news\nnonsense\n", "cats.txt");
    QVERIFY(!cats.is_ok());
    QVERIFY2(contains(cats.status().message(), "cats.txt:2:"), cats.status().message().c_str());
    QVERIFY(dipaco::is_brown_file_id("cr09"));
    QVERIFY(!dipaco::is_brown_file_id("cs01"));
    QVERIFY(!dipaco::is_brown_file_id("README"));
  }

  void brownFromTgz() {
    std::string tgz = fixtures::gzip(fixtures::tar({{"package/README", "Brown"},
                                                    {"package/cats.txt", "ca01 news\n"},
                                                    {"package/ca01", fixtures::brown_form_c()}}));
    auto docs = dipaco::brown_documents_from_tgz(tgz, "x.tgz");
    QVERIFY2(docs.is_ok(), docs.status().message().c_str());
    QCOMPARE(docs->size(), size_t{1});
    QCOMPARE((*docs)[0].category, std::string("news"));

    auto truncated = dipaco::brown_documents_from_tgz(tgz.substr(0, tgz.size() / 2), "x.tgz");
    QVERIFY(!truncated.is_ok());
    QVERIFY2(contains(truncated.status().message(), "x.tgz: truncated gzip data"),
             truncated.status().message().c_str());

    std::string tar = fixtures::tar({{"package/cats.txt", "ca01 news\n"}});
    tar[100] ^= 0x11;  // the mode field: breaks the header checksum
    auto bad = dipaco::read_tar(tar, "y.tar");
    QVERIFY(!bad.is_ok());
    QVERIFY2(contains(bad.status().message(), "y.tar: tar header at byte 0: bad checksum"),
             bad.status().message().c_str());
  }

  void txtBlocksAndFiles() {
    std::string text = "First block\nstill first.\n\n\n  \nSecond block.\n\nThird.";
    auto blocks = dipaco::documents_from_txt(text, "a.txt", dipaco::TxtMode::kBlocks);
    QCOMPARE(blocks.size(), size_t{3});
    QCOMPARE(blocks[0].text, std::string("First block\nstill first."));
    QCOMPARE(blocks[1].id, std::string("a.txt#2"));
    QCOMPARE(blocks[2].text, std::string("Third."));
    auto whole = dipaco::documents_from_txt(text, "a.txt", dipaco::TxtMode::kFile);
    QCOMPARE(whole.size(), size_t{1});
    QCOMPARE(whole[0].id, std::string("a.txt"));
  }

  void jsonlFieldsAndDefaults() {
    std::string jsonl =
        "{\"text\": \"one\", \"url\": \"u\", \"timestamp\": \"2019\"}\n"
        "\n"
        "{\"id\": \"x7\", \"category\": \"news\", \"text\": \"two\\nlines \\u00e9\"}\r\n"
        "{\"text\": \"   \"}\n";
    auto docs = dipaco::documents_from_jsonl(jsonl, "c.jsonl");
    QVERIFY2(docs.is_ok(), docs.status().message().c_str());
    QCOMPARE(docs->size(), size_t{2});  // the blank-text document is dropped
    QCOMPARE((*docs)[0].id, std::string("c.jsonl:1"));
    QCOMPARE((*docs)[0].category, std::string("c.jsonl"));
    QCOMPARE((*docs)[1].id, std::string("x7"));
    QCOMPARE((*docs)[1].text, std::string("two\nlines \xc3\xa9"));
  }

  // Most non-C4 dumps store integer ids: valid JSON of any kind is accepted in the fields other
  // than the text; a numeric id or category keeps its digits, other kinds read as absent.
  void jsonlNumericIdAndOtherKinds() {
    std::string jsonl =
        "{\"id\": 17, \"text\": \"hello world\"}\n"
        "{\"id\": -2.5e3, \"category\": 4, \"text\": \"b\", \"score\": 0.9}\n"
        "{\"id\": null, \"category\": [\"x\"], \"text\": \"c\", \"meta\": {\"a\": true}}\n"
        "{\"id\": {\"n\": 1}, \"category\": false, \"text\": \"d\"}\n";
    auto docs = dipaco::documents_from_jsonl(jsonl, "n.jsonl");
    QVERIFY2(docs.is_ok(), docs.status().message().c_str());
    QCOMPARE(docs->size(), size_t{4});
    QCOMPARE((*docs)[0].id, std::string("17"));
    QCOMPARE((*docs)[0].text, std::string("hello world"));
    QCOMPARE((*docs)[1].id, std::string("-2.5e3"));
    QCOMPARE((*docs)[1].category, std::string("4"));
    QCOMPARE((*docs)[2].id, std::string("n.jsonl:3"));
    QCOMPARE((*docs)[2].category, std::string("n.jsonl"));
    QCOMPARE((*docs)[3].id, std::string("n.jsonl:4"));
    QCOMPARE((*docs)[3].category, std::string("n.jsonl"));
    // The text itself must be a string, and that is not called invalid JSON.
    auto number_text = dipaco::documents_from_jsonl("{\"text\": 17}\n", "t.jsonl");
    QVERIFY(!number_text.is_ok());
    QVERIFY2(contains(number_text.status().message(),
                      "t.jsonl:1: column 10: field \"text\" is a number, not a string"),
             number_text.status().message().c_str());
    QVERIFY(!contains(number_text.status().message(), "invalid JSON"));
    // A malformed id is still invalid JSON.
    auto bad_id = dipaco::documents_from_jsonl("{\"id\": 1.e, \"text\": \"x\"}\n", "t.jsonl");
    QVERIFY(!bad_id.is_ok());
    QVERIFY2(contains(bad_id.status().message(), "invalid JSON"),
             bad_id.status().message().c_str());
  }

  void jsonlErrorsNameFileAndLine() {
    std::string jsonl;
    for (int i = 0; i < 16; ++i) jsonl += "{\"text\": \"ok\"}\n";
    auto missing = dipaco::documents_from_jsonl(jsonl + "{\"txt\": \"oops\"}\n", "corpus.jsonl");
    QVERIFY(!missing.is_ok());
    QCOMPARE(missing.status().message(), std::string("corpus.jsonl:17: no \"text\" field"));
    auto invalid = dipaco::documents_from_jsonl(jsonl + "{\"text\": \"a\" \"b\"}\n", "c.jsonl");
    QVERIFY(!invalid.is_ok());
    QVERIFY2(contains(invalid.status().message(), "c.jsonl:17: invalid JSON at column 14"),
             invalid.status().message().c_str());
  }

  void readCorpusDirectoryGzipAndErrors() {
    QTemporaryDir dir;
    QVERIFY(QDir(dir.path()).mkpath("sub"));
    fixtures::write(dir.filePath("b.txt"), "block one\n\nblock two\n");
    fixtures::write(dir.filePath("sub/a.jsonl.gz"),
                    fixtures::gzip("{\"text\": \"from gz\"}\n{\"text\": \"again\"}\n"));
    fixtures::write(dir.filePath("notes.md"), "ignored");
    fixtures::write(dir.filePath("c.jsonl"), "\xEF\xBB\xBF{\"text\": \"last\"}\n");  // with a BOM
    auto docs = dipaco::read_corpus({dir.path().toStdString()}, quiet());
    QVERIFY2(docs.is_ok(), docs.status().message().c_str());
    QCOMPARE(docs->size(), size_t{5});
    // Sorted paths: b.txt, c.jsonl, sub/a.jsonl.gz.
    QCOMPARE((*docs)[0].text, std::string("block one"));
    QCOMPARE((*docs)[2].text, std::string("last"));
    QCOMPARE((*docs)[3].text, std::string("from gz"));

    auto per_file =
        dipaco::read_corpus({dir.filePath("b.txt").toStdString()}, quiet(dipaco::TxtMode::kFile));
    QVERIFY(per_file.is_ok());
    QCOMPARE(per_file->size(), size_t{1});

    // A truncated gzip is an error naming the file, not a short corpus.
    std::string gz = fixtures::gzip(std::string(20000, 'x'));
    std::string cut_path = dir.filePath("cut.jsonl.gz").toStdString();
    fixtures::write(dir.filePath("cut.jsonl.gz"), gz.substr(0, gz.size() - 10));
    auto cut = dipaco::read_corpus({cut_path}, quiet());
    QVERIFY(!cut.is_ok());
    QVERIFY2(contains(cut.status().message(), cut_path + ": truncated gzip data"),
             cut.status().message().c_str());
    // Corrupt deflate data.
    std::string bad = gz;
    for (size_t i = 20; i < 40; ++i) bad[i] = static_cast<char>(0xff);
    auto corrupt = dipaco::gunzip(bad, "bad.gz");
    QVERIFY(!corrupt.is_ok());
    QVERIFY2(contains(corrupt.status().message(), "bad.gz: corrupt gzip data at compressed byte"),
             corrupt.status().message().c_str());
    // Two concatenated members read as one stream.
    auto both = dipaco::gunzip(fixtures::gzip("ab") + fixtures::gzip("cd"), "two.gz");
    QVERIFY(both.is_ok());
    QCOMPARE(*both, std::string("abcd"));

    QTemporaryDir empty_dir;
    fixtures::write(empty_dir.filePath("empty.txt"), "\n\n  \n");
    auto empty = dipaco::read_corpus({empty_dir.path().toStdString()}, quiet());
    QVERIFY(!empty.is_ok());
    QVERIFY2(contains(empty.status().message(), "has no documents"),
             empty.status().message().c_str());
    auto missing = dipaco::read_corpus({"/nonexistent/corpus.jsonl"}, quiet());
    QCOMPARE(missing.status().code(), dipaco::StatusCode::kNotFound);
    auto wrong_type = dipaco::read_corpus({dir.filePath("notes.md").toStdString()}, quiet());
    QVERIFY2(contains(wrong_type.status().message(), "unsupported corpus file type"),
             wrong_type.status().message().c_str());
  }

  // Extensions in any case are corpus files, and read by their kind (.TXT as text blocks, not
  // as JSON lines); a plain .json (one JSON document, usually an array) is not, and named alone
  // it is refused with what to write instead.
  void extensionsMatchInAnyCaseAndJsonIsNotRead() {
    QTemporaryDir dir;
    fixtures::write(dir.filePath("a.TXT"), "upper block\n\nsecond\n");
    fixtures::write(dir.filePath("b.JsonL"), "{\"text\": \"upper jsonl\"}\n");
    fixtures::write(dir.filePath("c.JSONL.GZ"), fixtures::gzip("{\"text\": \"upper gz\"}\n"));
    fixtures::write(dir.filePath("d.json"), "[\n  {\"text\": \"an array\"}\n]\n");
    QVERIFY(dipaco::is_corpus_file("NOTES.TXT"));
    QVERIFY(!dipaco::is_corpus_file("data.json"));
    auto files = dipaco::corpus_files(dir.path().toStdString());
    QVERIFY2(files.is_ok(), files.status().message().c_str());
    QCOMPARE(files->size(), size_t{3});
    auto docs = dipaco::read_corpus({dir.path().toStdString()}, quiet());
    QVERIFY2(docs.is_ok(), docs.status().message().c_str());
    QCOMPARE(docs->size(), size_t{4});
    QCOMPARE((*docs)[0].text, std::string("upper block"));
    QCOMPARE((*docs)[1].text, std::string("second"));
    QCOMPARE((*docs)[2].text, std::string("upper jsonl"));
    QCOMPARE((*docs)[3].text, std::string("upper gz"));
    auto json = dipaco::read_corpus({dir.filePath("d.json").toStdString()}, quiet());
    QCOMPARE(json.status().code(), dipaco::StatusCode::kInvalidArgument);
    QVERIFY2(contains(json.status().message(), "as .jsonl"), json.status().message().c_str());
  }

  void documentsFileRoundTrip() {
    QTemporaryDir dir;
    std::vector<Document> docs = {{"ca01", "news", "Line \"one\"\n\nTab\there \\ done."},
                                  {"cb01", "editorial", "\xe2\x82\xac and \x01 control"}};
    std::string path = dir.filePath("documents.jsonl").toStdString();
    QVERIFY(dipaco::write_documents_jsonl(path, docs));
    auto back = dipaco::read_corpus({path}, quiet());
    QVERIFY2(back.is_ok(), back.status().message().c_str());
    QCOMPARE(back->size(), size_t{2});
    for (size_t i = 0; i < docs.size(); ++i) {
      QCOMPARE((*back)[i].id, docs[i].id);
      QCOMPARE((*back)[i].category, docs[i].category);
      QCOMPARE((*back)[i].text, docs[i].text);
    }
    QCOMPARE(dipaco::documents_hash(*back), dipaco::documents_hash(docs));
    std::string why;
    QVERIFY(!dipaco::brown_documents_file_is_valid(path, &why));  // 2 documents, not 500
    QVERIFY2(contains(why, "has 2 documents"), why.c_str());
  }
};

QTEST_GUILESS_MAIN(CorpusReadersTest)
#include "test_data_corpus_readers.moc"
