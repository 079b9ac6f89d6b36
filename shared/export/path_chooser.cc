#include "export/path_chooser.h"

namespace dipaco {

namespace {
class FixedPathChooser final : public PathChooser {
 public:
  explicit FixedPathChooser(int id) : id_(id) {}
  int choose(std::span<const int32_t>) override { return id_; }
  std::string describe() const override { return "fixed path " + std::to_string(id_); }

 private:
  int id_;
};
}  // namespace

Result<std::unique_ptr<PathChooser>> make_path_chooser(const OpenedExport& ex,
                                                       std::optional<int> path) {
  if (path) {
    if (ex.find_path(*path) == nullptr)
      return not_found(ex.dir + ": the export has no path " + std::to_string(*path) +
                       " (its paths: " + ex.path_ids() + ")");
    return std::unique_ptr<PathChooser>(new FixedPathChooser(*path));
  }
  if (ex.paths.size() == 1)
    return std::unique_ptr<PathChooser>(new FixedPathChooser(ex.paths[0].id));
  return failed_precondition(
      ex.dir + ": the export has " + std::to_string(ex.paths.size()) + " paths (" + ex.path_ids() +
      ") and routing with its '" + ex.router.kind +
      "' router is not available in this build yet; choose one with --path ID");
}

}  // namespace dipaco
