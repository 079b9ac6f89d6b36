// The gRPC service over loopback against an in-process coordinator: the happy path, auth by
// role (several tokens per role, tokens swapped while serving, the token-file parser against a
// model), and every malformed input refused with a clear status and no change of state.
#include <unistd.h>

#include <QtTest>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "rpc/refusal_log_limiter.h"
#include "rpc_fixture.h"
#include "test_support.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

using dipaco::test::contains;
using namespace rpc_test;
namespace v1 = dipaco::v1;

namespace {

// held: run id -> sha256 of the run config the worker says it holds.
v1::Task lease(Served& s, const std::string& worker,
               const std::map<std::string, std::string>& held = {}) {
  v1::RegisterRequest reg;
  reg.set_worker_id(worker);
  v1::RegisterResponse registered;
  auto c = context();
  grpc::Status status = s.stub->Register(c.get(), reg, &registered);
  if (!status.ok()) {
    qWarning("Register: %s", status.error_message().c_str());
    return {};
  }
  v1::LeaseTaskRequest request;
  request.set_session_id(registered.session_id());
  for (const auto& [run, sha] : held) (*request.mutable_run_config_sha256())[run] = sha;
  v1::LeaseTaskResponse response;
  auto c2 = context();
  status = s.stub->LeaseTask(c2.get(), request, &response);
  if (!status.ok()) qWarning("LeaseTask: %s", status.error_message().c_str());
  if (!response.has_task()) qWarning("LeaseTask: no task: %s", response.reason().c_str());
  return response.task();
}

// Register as `worker` with `token`: the status code.
grpc::StatusCode register_with(Served& s, const std::string& token,
                               const std::string& worker = "w-auth") {
  v1::RegisterRequest request;
  request.set_worker_id(worker);
  v1::RegisterResponse response;
  auto c = context(token);
  return s.stub->Register(c.get(), request, &response).error_code();
}

// An operator RPC (Resume of the running run, which changes nothing) with `token`.
grpc::StatusCode resume_with(Served& s, const std::string& token) {
  v1::RunRequest request;
  request.set_run_id(std::to_string(s.run_id));
  v1::OperatorResponse response;
  auto c = context(token);
  return s.stub->Resume(c.get(), request, &response).error_code();
}

// `text` with control characters written as \r, \n, \t, \xNN: a failing case, readable.
std::string escaped(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

dipaco::AuthTokens token_lists(std::vector<std::string> worker, std::vector<std::string> op) {
  dipaco::AuthTokens tokens;
  tokens.worker = std::move(worker);
  tokens.op = std::move(op);
  return tokens;
}

// What must not change when a request is refused.
std::string fingerprint(Served& s, const v1::Task& task) {
  auto status = s.coordinator->run_status(s.run_id);
  std::string f = status.is_ok() ? std::to_string(status->tasks_done) + "/" +
                                       std::to_string(status->tasks_queued) + "/" +
                                       std::to_string(status->tasks_leased)
                                 : "?";
  int64_t lease_id = std::stoll(task.lease_id().empty() ? "0" : task.lease_id());
  for (const auto& module : task.modules()) {
    auto chunks = s.coordinator->stored_chunks(lease_id, module.module_id());
    f += "/" + std::to_string(chunks.is_ok() ? chunks->size() : 999);
  }
  return f;
}

}  // namespace

class RpcServiceTest : public QObject {
  Q_OBJECT

 private slots:
  void leaseFetchPushAndAggregate() {
    Served s;
    QVERIFY(s.start());
    v1::Task task = lease(s, "w1");
    QVERIFY(!task.lease_id().empty());
    QCOMPARE(task.modules_size(), 2);
    QCOMPARE(task.batch_size(), 2u);
    QCOMPARE(task.gradient_dtype(), v1::DTYPE_INT8);
    QVERIFY(task.model_config_toml().find("layers = 2") != std::string::npos);
    QCOMPARE(task.modules(0).num_params(), kModuleParams);
    QCOMPARE(task.modules(0).gradient_bytes(), uint64_t{int8_payload().size()});

    // The module streams in 1000-byte chunks and hashes to what the task says.
    v1::FetchModuleRequest fetch;
    fetch.set_run_id(task.run_id());
    fetch.set_module_id(task.modules(0).module_id());
    fetch.set_version(0);
    auto c = context();
    auto reader = s.stub->FetchModule(c.get(), fetch);
    v1::Chunk chunk;
    std::string bytes;
    int chunks = 0;
    while (reader->Read(&chunk)) {
      QCOMPARE(chunk.offset_bytes(), uint64_t{bytes.size()});
      QVERIFY(chunk.data().size() <= 1000);
      bytes += chunk.data();
      ++chunks;
    }
    QVERIFY(reader->Finish().ok());
    QCOMPARE(bytes.size(), size_t{kModuleParams * 4});
    QVERIFY(chunks > 1);
    QCOMPARE(dipaco::sha256(bytes), task.modules(0).sha256());

    v1::FetchShardRequest shard;
    shard.set_run_id(task.run_id());
    shard.set_shard_id(task.shard_id());
    auto c2 = context();
    auto shard_reader = s.stub->FetchShard(c2.get(), shard);
    std::string tokens;
    while (shard_reader->Read(&chunk)) tokens += chunk.data();
    QVERIFY(shard_reader->Finish().ok());
    QCOMPARE(tokens.size(), size_t{3000 + task.path_id()});

    v1::PushOuterGradientResponse response;
    grpc::Status pushed = push(*s.stub, task_chunks(task, int8_payload()), &response);
    QVERIFY2(pushed.ok(), pushed.error_message().c_str());
    QVERIFY(response.task_complete());

    // The other three paths complete step 0; the copy aggregator makes version 1.
    for (int w = 2; w <= 4; ++w) {
      v1::Task next = lease(s, "w" + std::to_string(w));
      QVERIFY(!next.lease_id().empty());
      QVERIFY(push(*s.stub, task_chunks(next, int8_payload()), &response).ok());
      QVERIFY(response.task_complete());
    }
    s.server->poll_once();
    auto status = s.coordinator->run_status(s.run_id);
    QVERIFY(status.is_ok());
    for (const auto& [module, version] : status->module_versions) QCOMPARE(version, uint64_t{1});
  }

  void tokensAreCheckedByRole() {
    Served s;
    QVERIFY(s.start());
    v1::RegisterRequest reg;
    reg.set_worker_id("w1");
    v1::RegisterResponse registered;
    auto none = context("");
    grpc::Status status = s.stub->Register(none.get(), reg, &registered);
    QCOMPARE(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    QVERIFY(contains(status.error_message(), "authorization"));
    auto wrong = context("not-a-token");
    QCOMPARE(s.stub->Register(wrong.get(), reg, &registered).error_code(),
             grpc::StatusCode::UNAUTHENTICATED);

    v1::RunRequest run;
    run.set_run_id(std::to_string(s.run_id));
    v1::OperatorResponse reply;
    auto as_worker = context(kWorkerToken);
    status = s.stub->Pause(as_worker.get(), run, &reply);
    QCOMPARE(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    QVERIFY(contains(status.error_message(), "operator token"));
    QCOMPARE(s.coordinator->run_status(s.run_id)->state, std::string("running"));
    auto as_operator = context(kOperatorToken);
    QVERIFY(s.stub->Pause(as_operator.get(), run, &reply).ok());
    QVERIFY(reply.changed());
    QCOMPARE(s.coordinator->run_status(s.run_id)->state, std::string("paused"));
    // The operator token may act as a worker too (an operator's own test worker).
    auto operator_registers = context(kOperatorToken);
    QVERIFY(s.stub->Register(operator_registers.get(), reg, &registered).ok());
  }

  // The first line of a token file, trimmed; a directory, a missing file and an empty one are
  // refused, each with its own reason.
  void tokenFilesAreReadOrRefused() {
    QTemporaryDir dir;
    const std::string token = dir.filePath("token").toStdString();
    QVERIFY(dipaco::write_file_atomically(token, "  secret-token \r\nsecond-token\n").is_ok());
    auto read = dipaco::read_token_file(token);
    QVERIFY2(read.is_ok(), read.status().message().c_str());
    QCOMPARE(*read, std::string("secret-token"));

    auto directory = dipaco::read_token_file(dir.path().toStdString());
    QVERIFY(!directory.is_ok());
    QVERIFY2(contains(directory.status().message(), "is a directory"),
             directory.status().message().c_str());
    QVERIFY(!contains(directory.status().message(), "empty"));

    auto missing = dipaco::read_token_file(dir.filePath("missing").toStdString());
    QVERIFY(!missing.is_ok());
    QVERIFY2(contains(missing.status().message(), "cannot read the token file"),
             missing.status().message().c_str());

    QVERIFY(dipaco::write_file_atomically(token, " \n").is_ok());
    auto empty = dipaco::read_token_file(token);
    QVERIFY(!empty.is_ok());
    QVERIFY2(contains(empty.status().message(), "the token file is empty"),
             empty.status().message().c_str());

    // A byte order mark (an editor's) and an annotation after the token are not part of it.
    QVERIFY(dipaco::write_file_atomically(token,
                                          "\xEF\xBB\xBF"
                                          "rotated-token # new on 2026-11-26\n")
                .is_ok());
    auto annotated = dipaco::read_token_file(token);
    QVERIFY2(annotated.is_ok(), annotated.status().message().c_str());
    QCOMPARE(*annotated, std::string("rotated-token"));

    // A space inside a token (an annotation without '#') is refused with the file and the line,
    // not the token.
    QVERIFY(dipaco::write_file_atomically(token, "# tokens\nfirst-token\nsecond-token rotated\n")
                .is_ok());
    auto spaced = dipaco::read_token_list_file(token);
    QVERIFY(!spaced.is_ok());
    QVERIFY2(contains(spaced.status().message(), token + ": line 3: a token cannot contain spaces"),
             spaced.status().message().c_str());
    QVERIFY(!contains(spaced.status().message(), "second-token"));

    // Fingerprints: 8 hex digits of the token's sha256, the same on both sides.
    QCOMPARE(dipaco::token_fingerprint("secret-token"),
             dipaco::to_hex(dipaco::sha256("secret-token")).substr(0, 8));
    QCOMPARE(dipaco::token_fingerprint("secret-token").size(), size_t{8});
    QVERIFY(dipaco::token_fingerprint("secret-token") != dipaco::token_fingerprint("secret-tokem"));
  }

  // Several tokens per role: each listed one works for its role; a prefix, an extension, an
  // empty token and a worker token on an operator RPC do not. A set with a token in both roles
  // or an empty role is refused and the running tokens stay.
  void anyListedTokenIsAccepted() {
    Served s;
    QVERIFY(s.start());
    const std::string next_worker = "worker-token-next-abcdef";
    const std::string next_operator = "operator-token-next-fedcba";
    QVERIFY(
        s.server
            ->set_tokens(token_lists({kWorkerToken, next_worker}, {kOperatorToken, next_operator}))
            .is_ok());
    const grpc::StatusCode kOk = grpc::StatusCode::OK;
    const grpc::StatusCode kUnauthenticated = grpc::StatusCode::UNAUTHENTICATED;
    QCOMPARE(register_with(s, kWorkerToken), kOk);
    QCOMPARE(register_with(s, next_worker), kOk);
    QCOMPARE(register_with(s, next_operator), kOk);  // an operator token may act as a worker
    QCOMPARE(resume_with(s, kOperatorToken), kOk);
    QCOMPARE(resume_with(s, next_operator), kOk);
    QCOMPARE(resume_with(s, next_worker), grpc::StatusCode::PERMISSION_DENIED);
    QCOMPARE(resume_with(s, kWorkerToken), grpc::StatusCode::PERMISSION_DENIED);
    for (const std::string& wrong :
         {next_worker.substr(0, next_worker.size() - 1), next_worker + "x",
          std::string(kWorkerToken) + next_worker, std::string("x"), std::string(" ")}) {
      QCOMPARE(register_with(s, wrong), kUnauthenticated);
      QCOMPARE(resume_with(s, wrong), kUnauthenticated);
    }

    dipaco::Status refused = s.server->set_tokens(token_lists({next_worker}, {next_worker}));
    QVERIFY(!refused.is_ok());
    QVERIFY2(contains(refused.message(), "must differ"), refused.message().c_str());
    QVERIFY(!s.server->set_tokens(token_lists({}, {kOperatorToken})).is_ok());
    QVERIFY(!s.server->set_tokens(token_lists({""}, {kOperatorToken})).is_ok());
    QCOMPARE(register_with(s, kWorkerToken), kOk);
    QCOMPARE(register_with(s, next_worker), kOk);
    QCOMPARE(resume_with(s, next_operator), kOk);
  }

  // dipaco serve's SIGHUP path (read_auth_tokens, then set_tokens) while the server runs, on
  // the same connection: the new worker token added as a second line works next to the old
  // one; with the old line removed the old token is refused. A reload from a file without a
  // token, a missing file or a token in both roles fails naming the file, and the running
  // tokens stay.
  void tokenReloadSwapsTokensWhileServing() {
    Served s;
    QVERIFY(s.start());
    const std::string worker_file = s.dir.filePath("worker.token").toStdString();
    const std::string operator_file = s.dir.filePath("operator.token").toStdString();
    const std::string next = "worker-token-next-0246";
    const grpc::StatusCode kOk = grpc::StatusCode::OK;
    QCOMPARE(register_with(s, next), grpc::StatusCode::UNAUTHENTICATED);

    QVERIFY(
        dipaco::write_file_atomically(
            worker_file, std::string(kWorkerToken) + "\n# rotation: the next token\n" + next + "\n")
            .is_ok());
    auto both = dipaco::read_auth_tokens(worker_file, operator_file);
    QVERIFY2(both.is_ok(), both.status().message().c_str());
    QCOMPARE(both->worker.size(), size_t{2});
    QVERIFY(s.server->set_tokens(*both).is_ok());
    QCOMPARE(register_with(s, kWorkerToken), kOk);
    QCOMPARE(register_with(s, next), kOk);

    QVERIFY(dipaco::write_file_atomically(worker_file, next + "\n").is_ok());
    auto rotated = dipaco::read_auth_tokens(worker_file, operator_file);
    QVERIFY2(rotated.is_ok(), rotated.status().message().c_str());
    QVERIFY(s.server->set_tokens(*rotated).is_ok());
    QCOMPARE(register_with(s, kWorkerToken), grpc::StatusCode::UNAUTHENTICATED);
    QCOMPARE(register_with(s, next), kOk);
    QCOMPARE(resume_with(s, kOperatorToken), kOk);

    QVERIFY(dipaco::write_file_atomically(operator_file, "  \n# no token yet\n").is_ok());
    auto empty = dipaco::read_auth_tokens(worker_file, operator_file);
    QVERIFY(!empty.is_ok());
    QVERIFY2(contains(empty.status().message(), operator_file + ": the token file is empty"),
             empty.status().message().c_str());
    const std::string missing_file = s.dir.filePath("missing.token").toStdString();
    auto missing = dipaco::read_auth_tokens(missing_file, operator_file);
    QVERIFY(!missing.is_ok());
    QVERIFY2(contains(missing.status().message(), missing_file),
             missing.status().message().c_str());
    QVERIFY(dipaco::write_file_atomically(operator_file, next + "\n").is_ok());
    auto shared = dipaco::read_auth_tokens(worker_file, operator_file);
    QVERIFY(!shared.is_ok());
    QVERIFY2(contains(shared.status().message(), "must differ"), shared.status().message().c_str());
    QCOMPARE(register_with(s, next), kOk);  // nothing was swapped in
    QCOMPARE(resume_with(s, kOperatorToken), kOk);
    QCOMPARE(resume_with(s, next), grpc::StatusCode::PERMISSION_DENIED);
  }

  // The token-file parser against a model, on random files: tokens (with '#' inside), blank and
  // whitespace-only lines, '#' comments (indented too), inline comments (whitespace then '#'),
  // whitespace around tokens, a byte order mark, LF or CRLF line ends, with or without a final
  // newline; a token with whitespace inside fails, naming the first such line. A file reads as
  // its first token, or fails when it holds none.
  void tokenListParserMatchesItsModel() {
    std::mt19937 random(20261126);
    const std::string token_chars = "abcXYZ0189-_.=+/~#";
    const std::string first_chars = "abcXYZ0189-_.=+/~";  // a leading '#' makes a comment
    const std::string spaces = " \t\r\f\v";
    const std::string comment_chars = token_chars + spaces;
    auto pick = [&](const std::string& from) { return from[random() % from.size()]; };
    auto padding = [&](int at_least) {
      std::string pad;
      for (int n = at_least + static_cast<int>(random() % 4); n > 0; --n) pad += pick(spaces);
      return pad;
    };
    auto comment = [&] {
      std::string text = "#";
      for (int n = static_cast<int>(random() % 12); n > 0; --n) text += pick(comment_chars);
      return text;
    };
    QTemporaryDir dir;
    const std::string file = dir.filePath("tokens").toStdString();
    for (int round = 0; round < 3000; ++round) {
      std::vector<std::string> expected;
      int first_bad_line = 0;  // 1-based; 0: every line is valid
      std::string text = random() % 8 == 0 ? "\xEF\xBB\xBF" : "";
      const int lines = static_cast<int>(random() % 8);
      for (int i = 0; i < lines; ++i) {
        std::string line = padding(0);
        switch (random() % 5) {
          case 0: break;  // blank or whitespace only
          case 1: line += comment(); break;
          default: {  // a token, maybe with an inline comment, rarely with a space inside
            std::string token(1, pick(first_chars));
            for (int n = static_cast<int>(random() % 24); n > 0; --n) token += pick(token_chars);
            line += token;
            if (random() % 16 == 0) {
              line += padding(1) + pick(first_chars);
              if (first_bad_line == 0) first_bad_line = i + 1;
            }
            expected.push_back(token);
            if (random() % 2 == 0) line += padding(1) + comment();
          }
        }
        line += padding(0);
        text += line;
        if (i + 1 < lines || random() % 2 == 0) text += random() % 2 == 0 ? "\r\n" : "\n";
      }
      const std::string where =
          "round " + std::to_string(round) + ", from \"" + escaped(text) + "\"";
      const auto parsed = dipaco::parse_token_list(text);
      if (first_bad_line != 0) {
        QVERIFY2(!parsed.is_ok(), where.c_str());
        QVERIFY2(contains(parsed.status().message(), "line " + std::to_string(first_bad_line) +
                                                         ": a token cannot contain spaces"),
                 (where + ": " + parsed.status().message()).c_str());
        continue;
      }
      QVERIFY2(parsed.is_ok(), (where + ": " + parsed.status().message()).c_str());
      QVERIFY2(*parsed == expected,
               (where + ": " + std::to_string(parsed->size()) + " tokens parsed, " +
                std::to_string(expected.size()) + " expected")
                   .c_str());
      if (round % 100 != 0) continue;  // the files, on a sample
      QVERIFY(dipaco::write_file_atomically(file, text).is_ok());
      auto first = dipaco::read_token_file(file);
      QCOMPARE(first.is_ok(), !expected.empty());
      if (first.is_ok()) QCOMPARE(*first, expected.front());
    }
  }

  // A refused token is logged once a minute per peer address and role, naming the peer, the role
  // and the RPC, with the token's fingerprint and never the token.
  void refusedTokensAreLoggedRateLimited() {
    Served s;
    QVERIFY(s.start());
    dipaco::token_refusal_log_limiter().clear();
    QTemporaryDir dir;
    const std::string log_file = dir.filePath("stderr").toStdString();
    std::fflush(stderr);
    const int saved_stderr = dup(2);
    FILE* captured = std::fopen(log_file.c_str(), "w");
    QVERIFY(captured != nullptr);
    dup2(fileno(captured), 2);
    const std::string stale = "stale-token-rotated-out";
    const auto first = register_with(s, stale);
    const auto second = register_with(s, stale);
    const auto as_operator = resume_with(s, stale);
    std::fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    std::fclose(captured);
    QCOMPARE(first, grpc::StatusCode::UNAUTHENTICATED);
    QCOMPARE(second, grpc::StatusCode::UNAUTHENTICATED);
    QCOMPARE(as_operator, grpc::StatusCode::UNAUTHENTICATED);
    auto text = dipaco::read_file(log_file);
    QVERIFY(text.is_ok());
    QVERIFY2(!contains(*text, stale), text->c_str());
    auto count = [&](const std::string& needle) {
      int found = 0;
      for (size_t at = text->find(needle); at != std::string::npos; at = text->find(needle, at + 1))
        ++found;
      return found;
    };
    QVERIFY2(count("WARN") == 2, text->c_str());
    QVERIFY2(count("refused a worker call Register from ipv") == 1, text->c_str());
    QVERIFY2(count("refused a operator call Resume from ipv") == 0, text->c_str());
    QVERIFY2(count("refused an operator call Resume from ipv") == 1, text->c_str());
    QVERIFY2(count("sha256 " + dipaco::token_fingerprint(stale)) == 2, text->c_str());
  }

  // The limiter: once per key per interval, and never more than its capacity of keys.
  void refusalLogLimiterIsBounded() {
    dipaco::RefusalLogLimiter limiter(/*interval_ms=*/1000, /*capacity=*/3);
    QVERIFY(limiter.should_log("a", 0));
    QVERIFY(!limiter.should_log("a", 999));
    QVERIFY(limiter.should_log("a", 1000));
    QVERIFY(limiter.should_log("b", 1000));
    QVERIFY(limiter.should_log("c", 1001));
    QVERIFY(limiter.should_log("d", 1002));  // full: the one logged longest ago goes
    QCOMPARE(limiter.size(), size_t{3});
    QVERIFY(!limiter.should_log("d", 1500));
    for (int key = 0; key < 100; ++key) limiter.should_log(std::to_string(key), 2000 + key);
    QCOMPARE(limiter.size(), size_t{3});
    QCOMPARE(dipaco::peer_without_port("ipv4:10.0.0.7:53122"), std::string("ipv4:10.0.0.7"));
    QCOMPARE(dipaco::peer_without_port("ipv6:[::1]:53122"), std::string("ipv6:[::1]"));
    QCOMPARE(dipaco::peer_without_port("unix:/run/dipaco.sock"),
             std::string("unix:/run/dipaco.sock"));
  }

  // PushProgress tells a worker whose stream broke which sequences the coordinator holds.
  void pushProgressListsHeldSequences() {
    Served s;
    QVERIFY(s.start());
    v1::Task task = lease(s, "w1");
    QVERIFY(!task.lease_id().empty());
    auto progress = [&](const std::string& session, const std::string& lease_id,
                        v1::PushProgressResponse* response,
                        const std::string& token = kWorkerToken) {
      v1::PushProgressRequest request;
      request.set_session_id(session);
      request.set_lease_id(lease_id);
      auto c = context(token);
      return s.stub->PushProgress(c.get(), request, response);
    };
    v1::PushProgressResponse held;
    QVERIFY(progress("w1", task.lease_id(), &held).ok());
    QCOMPARE(held.sequences_held_size(), 0);
    QVERIFY(!held.task_complete());
    QCOMPARE(held.lease_state(), std::string("live"));

    auto chunks = task_chunks(task, int8_payload());  // 3 chunks per module
    QCOMPARE(chunks.size(), size_t{6});
    v1::PushOuterGradientResponse response;
    QVERIFY(push(*s.stub, {chunks[0], chunks[1], chunks[3]}, &response).ok());
    QVERIFY(progress("w1", task.lease_id(), &held).ok());
    QCOMPARE(std::vector<uint64_t>(held.sequences_held().begin(), held.sequences_held().end()),
             (std::vector<uint64_t>{0, 1, 3}));
    QVERIFY(!held.task_complete());

    QVERIFY(push(*s.stub, {chunks[2], chunks[4], chunks[5]}, &response).ok());
    QVERIFY(response.task_complete());
    QVERIFY(progress("w1", task.lease_id(), &held).ok());
    QVERIFY(held.task_complete());
    QCOMPARE(held.lease_state(), std::string("completed"));

    QCOMPARE(progress("w2", task.lease_id(), &held).error_code(),
             grpc::StatusCode::FAILED_PRECONDITION);
    QCOMPARE(progress("w1", "999", &held).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    QCOMPARE(progress("w1", "x", &held).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    QCOMPARE(progress("w1", task.lease_id(), &held, "").error_code(),
             grpc::StatusCode::UNAUTHENTICATED);
  }

  void wrongShapeIsRefusedWithoutStateChange() {
    Served s;
    QVERIFY(s.start());
    v1::Task task = lease(s, "w1");
    std::string payload = int8_payload();
    std::string before = fingerprint(s, task);
    v1::PushOuterGradientResponse response;

    auto chunks = task_chunks(task, payload);
    chunks[0].set_num_params(kModuleParams + 1);
    grpc::Status status = push(*s.stub, chunks, &response);
    QCOMPARE(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    QVERIFY2(contains(status.error_message(), "num_params"), status.error_message().c_str());

    chunks = task_chunks(task, payload + "x");  // one byte too many for int8 of 5000 params
    status = push(*s.stub, chunks, &response);
    QCOMPARE(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    QVERIFY2(contains(status.error_message(), "total_bytes"), status.error_message().c_str());

    chunks = task_chunks(task, payload);
    chunks[0].set_dtype(v1::DTYPE_BF16);
    status = push(*s.stub, chunks, &response);
    QCOMPARE(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    QVERIFY(contains(status.error_message(), "dtype"));

    chunks = task_chunks(task, payload);
    uint32_t other = task.modules(0).module_id() == 0 ? 1 : 0;  // same level, other path
    chunks[0].set_module_id(other);
    status = push(*s.stub, chunks, &response);
    QCOMPARE(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    QVERIFY(contains(status.error_message(), "is not on path"));

    chunks = task_chunks(task, payload);
    chunks[0].set_lease_id("17x");
    status = push(*s.stub, chunks, &response);
    QCOMPARE(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    QVERIFY(contains(status.error_message(), "not an id"));
    QCOMPARE(fingerprint(s, task), before);
  }

  // A path-specific module (modules 2 and 3 here, as a grid's path_specific level): the task asks
  // for its trained parameters in fp32; a worker that predates that pushes an int8 outer gradient
  // (params unset), which is still taken as its size tells it apart; trained parameters for a
  // shared module, and fp32 without `params` for the path-specific one, are refused.
  void pathSpecificModulesTakeTrainedParametersOrAnOlderWorkersGradient() {
    Served s;
    s.adjust_task_config = [](dipaco::TaskConfig& t) {
      for (uint32_t m : {2u, 3u}) {
        t.modules[m].gradient_dtype = dipaco::WireDtype::kFp32;
        t.modules[m].module_delta_dtype = dipaco::WireDtype::kFp32;
        t.modules[m].push_params = true;
      }
    };
    QVERIFY(s.start());
    for (const char* worker : {"new", "old"}) {
      v1::Task task = lease(s, worker);
      QCOMPARE(task.modules_size(), 2);
      const v1::ModuleRef& shared = task.modules(0);
      const v1::ModuleRef& own = task.modules(1);
      QVERIFY(!shared.push_params());
      QCOMPARE(shared.gradient_dtype(), v1::DTYPE_UNSPECIFIED);  // the task's int8
      QCOMPARE(shared.gradient_bytes(), uint64_t{int8_payload().size()});
      QVERIFY(own.push_params());
      QCOMPARE(own.gradient_dtype(), v1::DTYPE_F32);
      QCOMPARE(own.module_delta_dtype(), v1::DTYPE_F32);
      QCOMPARE(own.gradient_bytes(), kModuleParams * 4);

      const std::string int8 = int8_payload();
      const std::string fp32(kModuleParams * 4, '\0');  // zeros: finite parameters
      auto chunks_of = [&](const std::string& own_payload, v1::DType own_dtype, bool params) {
        std::vector<v1::OuterGradientChunk> chunks = {
            make_chunk(task.lease_id(), 0, shared.module_id(), int8, 0, int8.size()),
            make_chunk(task.lease_id(), 1, own.module_id(), own_payload, 0, own_payload.size())};
        chunks[1].set_dtype(own_dtype);
        chunks[1].set_params(params);
        return chunks;
      };
      v1::PushOuterGradientResponse response;
      auto refused = chunks_of(int8, v1::DTYPE_INT8, false);
      refused[0].set_params(true);  // a shared module takes outer gradients only
      grpc::Status status = push(*s.stub, refused, &response);
      QCOMPARE(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
      QVERIFY2(contains(status.error_message(), "which takes outer gradients"),
               status.error_message().c_str());
      status = push(*s.stub, chunks_of(fp32, v1::DTYPE_F32, false), &response);
      QCOMPARE(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
      QVERIFY2(contains(status.error_message(), "is path-specific"),
               status.error_message().c_str());

      const bool new_worker = std::string(worker) == "new";
      status = push(*s.stub,
                    new_worker ? chunks_of(fp32, v1::DTYPE_F32, true)
                               : chunks_of(int8, v1::DTYPE_INT8, false),
                    &response);
      QVERIFY2(status.ok(), status.error_message().c_str());
      QVERIFY(response.task_complete());
    }
  }

  void nonFiniteGradientIsRefused() {
    Served s;
    QVERIFY(s.start());
    v1::Task task = lease(s, "w1");
    std::string payload = int8_payload();
    float nan = std::nanf("");
    std::memcpy(payload.data(), &nan, 4);  // the first chunk's scale
    std::string before = fingerprint(s, task);
    v1::PushOuterGradientResponse response;
    grpc::Status status = push(*s.stub, task_chunks(task, payload), &response);
    QCOMPARE(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    QVERIFY2(contains(status.error_message(), "finite"), status.error_message().c_str());
    // Chunks before the one completing the module were stored, but nothing was counted.
    auto run = s.coordinator->run_status(s.run_id);
    QCOMPARE(run->tasks_done, int64_t{0});
    QCOMPARE(run->tasks_leased, int64_t{1});
    QCOMPARE(fingerprint(s, task).substr(0, 6), before.substr(0, 6));
  }

  void oversizedChunkIsRefused() {
    Served s;
    QVERIFY(s.start(2, 5000, /*max_push_chunk_bytes=*/1024));
    v1::Task task = lease(s, "w1");
    std::string before = fingerprint(s, task);
    v1::PushOuterGradientResponse response;
    grpc::Status status = push(*s.stub, task_chunks(task, int8_payload(), 2048), &response);
    QCOMPARE(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    QVERIFY(contains(status.error_message(), "over the limit of 1024"));
    QCOMPARE(fingerprint(s, task), before);
  }

  void corruptPayloadFailsItsHash() {
    Served s;
    QVERIFY(s.start());
    v1::Task task = lease(s, "w1");
    std::string payload = int8_payload();
    auto chunks = task_chunks(task, payload);
    std::string data = chunks[1].chunk().data();
    data[3] = static_cast<char>(data[3] ^ 1);
    chunks[1].mutable_chunk()->set_data(data);
    // Push only the first module's chunks.
    chunks.resize((payload.size() + 2047) / 2048);
    v1::PushOuterGradientResponse response;
    grpc::Status status = push(*s.stub, chunks, &response);
    QCOMPARE(status.error_code(), grpc::StatusCode::DATA_LOSS);
    QVERIFY(contains(status.error_message(), "hash to"));
    QCOMPARE(s.coordinator->run_status(s.run_id)->tasks_done, int64_t{0});
  }

  void staleLeaseIsRefused() {
    Served s;
    QVERIFY(s.start());
    v1::Task task = lease(s, "w1");
    v1::PreemptTaskRequest preempt;
    preempt.set_lease_id(task.lease_id());
    v1::OperatorResponse reply;
    auto c = context(kOperatorToken);
    QVERIFY(s.stub->PreemptTask(c.get(), preempt, &reply).ok());
    std::string before = fingerprint(s, task);
    v1::PushOuterGradientResponse response;
    grpc::Status status = push(*s.stub, task_chunks(task, int8_payload()), &response);
    QCOMPARE(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    QVERIFY2(contains(status.error_message(), "refused"), status.error_message().c_str());
    QCOMPARE(fingerprint(s, task), before);

    auto unknown = task_chunks(task, int8_payload());
    for (auto& chunk : unknown) chunk.set_lease_id("999999");
    status = push(*s.stub, unknown, &response);
    QCOMPARE(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    QVERIFY(contains(status.error_message(), "unknown"));
  }

  void unknownRunIsNotFound() {
    Served s;
    QVERIFY(s.start());
    v1::FetchModuleRequest fetch;
    fetch.set_run_id("424242");
    auto c = context();
    auto reader = s.stub->FetchModule(c.get(), fetch);
    v1::Chunk chunk;
    QVERIFY(!reader->Read(&chunk));
    QCOMPARE(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
    v1::FetchShardRequest shard;
    shard.set_run_id("424242");
    auto c2 = context();
    auto shard_reader = s.stub->FetchShard(c2.get(), shard);
    QVERIFY(!shard_reader->Read(&chunk));
    QCOMPARE(shard_reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
    v1::RunRequest pause;
    pause.set_run_id("424242");
    v1::OperatorResponse reply;
    auto c3 = context(kOperatorToken);
    QCOMPARE(s.stub->Pause(c3.get(), pause, &reply).error_code(), grpc::StatusCode::NOT_FOUND);
    pause.set_run_id("three");
    auto c4 = context(kOperatorToken);
    QCOMPARE(s.stub->Pause(c4.get(), pause, &reply).error_code(),
             grpc::StatusCode::INVALID_ARGUMENT);
  }

  void truncatedStreamIsNotCountedAndResumes() {
    Served s;
    QVERIFY(s.start());
    v1::Task task = lease(s, "w1");
    auto chunks = task_chunks(task, int8_payload());
    auto half = chunks;
    half.resize(chunks.size() / 2);
    v1::PushOuterGradientResponse response;
    grpc::Status status = push(*s.stub, half, &response);
    QVERIFY(status.ok());
    QVERIFY(!response.task_complete());
    QVERIFY2(contains(response.reason(), "not complete"), response.reason().c_str());
    QCOMPARE(s.coordinator->run_status(s.run_id)->tasks_done, int64_t{0});
    // The retry resends everything: the first half is acknowledged, not counted again.
    status = push(*s.stub, chunks, &response);
    QVERIFY2(status.ok(), status.error_message().c_str());
    QVERIFY(response.task_complete());
    QCOMPARE(response.chunks_received(), uint64_t{chunks.size()});
    QCOMPARE(s.coordinator->run_status(s.run_id)->tasks_done, int64_t{1});
    // A third identical push after completion is acknowledged and changes nothing; its reason
    // says the lease is already complete (not "missing" nothing).
    response.Clear();
    QVERIFY(push(*s.stub, chunks, &response).ok());
    QCOMPARE(s.coordinator->run_status(s.run_id)->tasks_done, int64_t{1});
    QVERIFY2(contains(response.reason(), "is already complete"), response.reason().c_str());
    QVERIFY2(!contains(response.reason(), "missing"), response.reason().c_str());
  }

  void stalledWorkerIsPreemptedAtItsDeadline() {
    Served s;
    QVERIFY(s.start(2, /*lease_timeout_ms=*/300));
    v1::Task stalled = lease(s, "slow");
    QVERIFY(!stalled.lease_id().empty());
    std::this_thread::sleep_for(std::chrono::milliseconds(400));  // no heartbeat
    v1::HeartbeatRequest beat;
    beat.set_session_id("slow");
    beat.set_lease_id(stalled.lease_id());
    v1::HeartbeatResponse reply;
    auto c = context();
    QVERIFY(s.stub->Heartbeat(c.get(), beat, &reply).ok());
    QVERIFY(!reply.lease_valid());
    QVERIFY2(contains(reply.reason(), "expired"), reply.reason().c_str());
    v1::PushOuterGradientResponse response;
    QCOMPARE(push(*s.stub, task_chunks(stalled, int8_payload()), &response).error_code(),
             grpc::StatusCode::FAILED_PRECONDITION);
    // Its task went back to the queue: the four paths are leasable by others.
    std::set<uint32_t> paths;
    for (int w = 0; w < 4; ++w) paths.insert(lease(s, "fresh" + std::to_string(w)).path_id());
    QCOMPARE(paths.size(), size_t{4});
  }

  void downloadResumesAtAnOffset() {
    Served s;
    QVERIFY(s.start());
    v1::Task task = lease(s, "w1");
    v1::FetchModuleRequest fetch;
    fetch.set_run_id(task.run_id());
    fetch.set_module_id(task.modules(1).module_id());
    fetch.set_offset_bytes(12345);
    auto c = context();
    auto reader = s.stub->FetchModule(c.get(), fetch);
    v1::Chunk chunk;
    QVERIFY(reader->Read(&chunk));
    QCOMPARE(chunk.offset_bytes(), uint64_t{12345});
    while (reader->Read(&chunk)) {
    }
    QVERIFY(reader->Finish().ok());
    fetch.set_offset_bytes(kModuleParams * 4 + 1);
    auto c2 = context();
    auto past = s.stub->FetchModule(c2.get(), fetch);
    while (past->Read(&chunk)) {
    }
    QCOMPARE(past->Finish().error_code(), grpc::StatusCode::OUT_OF_RANGE);
  }

  // The run config travels once: a worker that names its hash gets leases without it, one that
  // names another hash (or none) gets it whole, always with the hash of what the run has.
  void runConfigIsSentOncePerWorker() {
    Served s;
    QVERIFY(s.start(/*outer_steps=*/3));
    v1::Task first = lease(s, "w1");
    QVERIFY(!first.run_config().empty());
    QCOMPARE(first.run_config_sha256(), dipaco::sha256_hex(first.run_config()));
    v1::Task known = lease(s, "w2", {{first.run_id(), first.run_config_sha256()}});
    QVERIFY(!known.lease_id().empty());
    QVERIFY(known.run_config().empty());
    QCOMPARE(known.run_config_sha256(), first.run_config_sha256());
    v1::Task stale = lease(s, "w3", {{first.run_id(), std::string(64, '0')}});
    QVERIFY(!stale.lease_id().empty());
    QCOMPARE(stale.run_config(), first.run_config());
  }

  // WatchRun streams the lease events with their fields (lease, worker, path) and the run's
  // metric points, from the database (so a watcher that attaches late still gets them all).
  void watchRunStreamsEventsAndMetrics() {
    Served s;
    QVERIFY(s.start());
    v1::Task task = lease(s, "w1");
    QVERIFY(!task.lease_id().empty());
    dipaco::MetricPoint point;
    point.run_id = s.run_id;
    point.path_id = task.path_id();
    point.outer_step = 0;
    point.inner_step = 7;
    point.name = "train_loss";
    point.value = 4.25;
    QVERIFY(s.coordinator->report_metrics({point}).is_ok());
    v1::RunRequest request;
    request.set_run_id(std::to_string(s.run_id));
    auto c = context(kOperatorToken);
    auto reader = s.stub->WatchRun(c.get(), request);
    v1::RunEvent event;
    bool granted = false, metric = false;
    for (int i = 0; i < 20 && !(granted && metric) && reader->Read(&event); ++i) {
      if (event.has_lease() && event.lease().kind() == v1::LeaseEvent::KIND_GRANTED) {
        granted = true;
        QCOMPARE(event.lease().lease_id(), task.lease_id());
        QCOMPARE(event.lease().worker_id(), std::string("w1"));
        QCOMPARE(event.lease().path_id(), task.path_id());
      }
      if (event.has_metric()) {
        metric = true;
        QCOMPARE(event.metric().name(), std::string("train_loss"));
        QCOMPARE(event.metric().value(), 4.25);
        QCOMPARE(event.metric().inner_step(), uint64_t{7});
        QCOMPARE(event.metric().path_id(), task.path_id());
      }
    }
    QVERIFY(granted);
    QVERIFY(metric);
    c->TryCancel();
    while (reader->Read(&event)) {
    }
    (void)reader->Finish();
  }
};

QTEST_GUILESS_MAIN(RpcServiceTest)
#include "test_rpc_service.moc"
