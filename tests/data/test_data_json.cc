#include <QtTest>
#include <random>

#include "data/json_reader.h"
#include "data/json_writer.h"

using dipaco::parse_json_string;
using dipaco::parse_json_string_fields;

class JsonTest : public QObject {
  Q_OBJECT

 private slots:
  void escapesDecode() {
    auto v =
        parse_json_string("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"");
    QVERIFY2(v.is_ok(), v.status().message().c_str());
    QCOMPARE(*v, std::string("a\"b\\c/d\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
  }

  void badEscapesAreErrorsWithColumns() {
    struct Case {
      const char* json;
      const char* expect;
    } cases[] = {
        {"\"abc", "unterminated string"},
        {"\"\\x\"", "unknown escape"},
        {"\"\\u12\"", "4 hex digits"},
        {"\"\\ud83d\"", "not followed by a low surrogate"},
        {"\"\\ud83d\\u0041\"", "not followed by a low surrogate"},
        {"\"\\ude00\"", "lone low surrogate"},
        {"\"a\tb\"", "control character"},
        {"\"ok\" x", "unexpected text"},
    };
    for (const auto& c : cases) {
      auto v = parse_json_string(c.json);
      QVERIFY2(!v.is_ok(), c.json);
      QVERIFY2(v.status().message().find(c.expect) != std::string::npos,
               (std::string(c.json) + " -> " + v.status().message()).c_str());
      QVERIFY2(v.status().message().find("column ") != std::string::npos,
               v.status().message().c_str());
    }
  }

  // Property: any byte string survives json_quote → parse_json_string unchanged.
  void randomStringsRoundTrip() {
    std::mt19937 rng(7);
    for (int trial = 0; trial < 2000; ++trial) {
      std::string s(rng() % 40, '\0');
      for (auto& c : s) {
        // Bias towards the interesting bytes: controls, quotes, backslashes, UTF-8 lead bytes.
        switch (rng() % 4) {
          case 0: c = static_cast<char>(rng() % 0x20); break;
          case 1: c = "\"\\/u"[rng() % 4]; break;
          default: c = static_cast<char>(rng() % 256); break;
        }
      }
      std::string quoted = dipaco::json_quote(s);
      auto back = parse_json_string(quoted);
      QVERIFY2(back.is_ok(), (quoted + ": " + back.status().message()).c_str());
      QCOMPARE(*back, s);
      // The same string as a field of an object.
      auto fields = parse_json_string_fields("{\"text\":" + quoted + "}", {"text"});
      QVERIFY(fields.is_ok());
      QCOMPARE(*(*fields)[0], s);
    }
  }

  // Property: code points written as \u escapes (surrogate pairs above U+FFFF) decode to UTF-8.
  void randomCodePointEscapesDecode() {
    std::mt19937 rng(11);
    for (int trial = 0; trial < 2000; ++trial) {
      std::string json = "\"";
      std::string expected;
      int n = static_cast<int>(rng() % 8);
      for (int i = 0; i < n; ++i) {
        uint32_t cp = rng() % 0x110000;
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
        dipaco::append_utf8(expected, cp);
        char buffer[16];
        if (cp >= 0x10000) {
          uint32_t v = cp - 0x10000;
          std::snprintf(buffer, sizeof buffer, "\\u%04X\\u%04x", 0xD800 + (v >> 10),
                        0xDC00 + (v & 0x3FF));
        } else {
          std::snprintf(buffer, sizeof buffer, "\\u%04x", cp);
        }
        json += buffer;
      }
      json += "\"";
      auto v = parse_json_string(json);
      QVERIFY2(v.is_ok(), (json + ": " + v.status().message()).c_str());
      QCOMPARE(*v, expected);
    }
  }

  void objectFieldsSkipOtherValues() {
    auto fields = parse_json_string_fields(
        " {\"url\": \"http://x\", \"n\": -1.5e3, \"ok\": true, \"no\": null, \"f\": false,\n       "
        "      \"nested\": {\"text\": \"not me\", \"a\": [1, {\"b\": []}, \"c\"]}, \"text\": "
        "\"hello\",\n             \"meta\": [], \"id\": \"d1\"} ",
        {"text", "id", "category"});
    QVERIFY2(fields.is_ok(), fields.status().message().c_str());
    QCOMPARE(*(*fields)[0], std::string("hello"));
    QCOMPARE(*(*fields)[1], std::string("d1"));
    QVERIFY(!(*fields)[2].has_value());
  }

  // Per field: a number reads as its JSON text, other non-string kinds as absent, or an error.
  void nonStringFieldsReadAsAsked() {
    using dipaco::NonStringField;
    auto fields =
        dipaco::parse_json_fields("{\"id\": 42, \"label\": true, \"text\": \"t\", \"n\": -0.5E+2}",
                                  {{"text", NonStringField::kError},
                                   {"id", NonStringField::kNumberAsText},
                                   {"label", NonStringField::kNumberAsText},
                                   {"n", NonStringField::kNumberAsText}});
    QVERIFY2(fields.is_ok(), fields.status().message().c_str());
    QCOMPARE(*(*fields)[0], std::string("t"));
    QCOMPARE(*(*fields)[1], std::string("42"));
    QVERIFY(!(*fields)[2].has_value());
    QCOMPARE(*(*fields)[3], std::string("-0.5E+2"));
    // A later duplicate of another kind wins, also over a string.
    auto duplicate = dipaco::parse_json_fields("{\"id\": \"a\", \"id\": null}",
                                               {{"id", NonStringField::kNumberAsText}});
    QVERIFY2(duplicate.is_ok(), duplicate.status().message().c_str());
    QVERIFY(!(*duplicate)[0].has_value());
    auto strict = dipaco::parse_json_fields("{\"id\": 42}", {{"id", NonStringField::kError}});
    QVERIFY(!strict.is_ok());
    QCOMPARE(strict.status().message(),
             std::string("column 8: field \"id\" is a number, not a string"));
  }

  void invalidObjectsAreErrors() {
    struct Case {
      const char* json;
      const char* expect;
    } cases[] = {
        {"{\"text\": 3}", "field \"text\" is a number, not a string"},
        {"{\"text\": [\"a\"]}", "is an array"},
        {"{\"text\": \"a\",}", "expected '\"'"},
        {"{\"text\" \"a\"}", "expected ':'"},
        {"{\"a\": 01}", "expected '}'"},
        {"{\"a\": 1.}", "digit after '.'"},
        {"{\"a\": tru}", "expected a value"},
        {"[\"text\"]", "expected a JSON object"},
        {"{\"a\": 1} {", "unexpected text"},
        {"{\"a\": [1, 2", "expected ']'"},
        {"", "expected a JSON object"},
    };
    for (const auto& c : cases) {
      auto v = parse_json_string_fields(c.json, {"text"});
      QVERIFY2(!v.is_ok(), c.json);
      QVERIFY2(v.status().message().find(c.expect) != std::string::npos,
               (std::string(c.json) + " -> " + v.status().message()).c_str());
    }
  }

  void deepNestingIsAnErrorNotACrash() {
    std::string json = "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
    auto v = parse_json_string_fields(json, {"text"});
    QVERIFY(!v.is_ok());
    QVERIFY2(v.status().message().find("nested deeper") != std::string::npos,
             v.status().message().c_str());
  }
};

QTEST_GUILESS_MAIN(JsonTest)
#include "test_data_json.moc"
