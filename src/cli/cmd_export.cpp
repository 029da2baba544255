// lgd export: student weights as a torchvision .pth or a .safetensors file.
#include <torch/torch.h>

#include <filesystem>
#include <optional>

#include "commands.h"
#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"
#include "lgd/core/logging.h"
#include "lgd/core/version.h"
#include "lgd/export/layouts.h"
#include "lgd/export/weights_io.h"
#include "lgd/models/architectures.h"

namespace lgd::cli {
namespace {

struct ExportArgs {
  std::string arch;
  std::string weights;
  std::string checkpoint;
  std::string init;
  std::int64_t seed = 0;
  std::string format;
  std::string layout = "torchvision";
  std::string output;
  bool with_head = false;
  std::int64_t embed_dim = 0;
  std::int64_t num_classes = -1;  // -1: from the weights (random init: none)
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int run_export(ExportArgs a) {
  if (!a.checkpoint.empty()) {
    a.weights = a.checkpoint;
    if (a.arch.empty()) {
      const auto file = exporting::read_weights(a.checkpoint);
      const auto it = file.metadata.find("arch");
      if (it == file.metadata.end())
        throw UsageError("lgd export: " + a.checkpoint + " names no architecture; give --arch");
      a.arch = it->second;
    }
  }
  if (a.arch.empty()) throw UsageError("lgd export: --arch is required (except with --checkpoint)");
  models::architecture(a.arch);  // unknown names fail here with the list
  if (a.weights.empty() == a.init.empty())
    throw UsageError("lgd export: give exactly one of --checkpoint FILE, --weights FILE or --init random");
  const exporting::WeightsFormat format = exporting::parse_format(
      !a.format.empty() ? a.format
                        : (ends_with(a.output, ".safetensors") ? "safetensors" : "torchvision"));

  exporting::StudentWeights w;
  if (!a.init.empty()) {
    torch::manual_seed(static_cast<std::uint64_t>(a.seed));
    w.student = models::create_student(a.arch, {std::max<std::int64_t>(a.num_classes, 0)});
    if (a.with_head) {
      if (a.embed_dim <= 0)
        throw UsageError("lgd export: --with-head with --init random needs --embed-dim D");
      w.head = models::make_projection_head(w.student->feature_dim(), a.embed_dim);
    }
  } else {
    std::optional<std::int64_t> classes;
    if (a.num_classes >= 0) classes = a.num_classes;
    torch::manual_seed(static_cast<std::uint64_t>(a.seed));  // a classifier built fresh
    w = exporting::load_student_weights(a.arch, a.weights, classes);
    if (a.with_head && !w.head)
      throw UsageError("lgd export: --with-head, but " + a.weights + " has no head.* keys");
    if (!a.with_head) w.head = nullptr;
  }

  const auto layout = exporting::parse_layout(a.layout);
  if (layout != exporting::Layout::kTorchvision && w.head)
    throw UsageError("lgd export: --with-head: " + a.layout + "'s models have no place for LGD's projection head; "
                     "export it with --layout torchvision");
  const bool openmmlab = layout == exporting::Layout::kMmdet || layout == exporting::Layout::kMmseg;
  if ((layout == exporting::Layout::kDetectron2 || openmmlab) && format == exporting::WeightsFormat::kSafetensors)
    throw UsageError("lgd export: --layout " + a.layout + " writes a torch.save .pth (" +
                     (openmmlab ? "mmengine's load_checkpoint reads those" : "detectron2 reads those and its .pkl files") +
                     ", not safetensors)");
  const auto tensors = exporting::to_layout(layout, a.arch, exporting::export_tensors(*w.student, w.head));
  exporting::Metadata metadata{{"format", "pt"},
                               {"arch", a.arch},
                               {"layout", a.layout},
                               {"model", exporting::layout_model_name(layout, a.arch)},
                               {"num_classes", std::to_string(w.student->num_classes())},
                               {"feature_dim", std::to_string(w.student->feature_dim())},
                               {"lgd_version", version()}};
  if (w.head)
    metadata["embed_dim"] = std::to_string(w.head->children().back()->parameters()[0].size(0));
  // What the student was trained on: the teacher's input normalisation and size (an lgd
  // checkpoint, or an export of one, records them).
  for (const char* key : {"image_size", "image_mean", "image_std", "teacher"})
    if (auto it = w.metadata.find(key); it != w.metadata.end()) metadata[key] = it->second;
  if (metadata.count("image_mean")) metadata["channel_order"] = "RGB";
  exporting::write_weights(a.output, tensors, format, metadata);
  std::string sidecar;
  if (format == exporting::WeightsFormat::kTorchvision && metadata.count("image_mean")) {
    sidecar = exporting::sidecar_path(a.output);
    exporting::write_sidecar(sidecar, metadata);
  }
  if (layout == exporting::Layout::kDetectron2) {
    const std::string config = std::filesystem::path(a.output).replace_extension(".yaml").string();
    auto known = [&](const char* key) { return metadata.count(key) ? metadata.at(key) : std::string(); };
    write_file_atomic(config, exporting::detectron2_config(a.arch, std::filesystem::path(a.output).filename().string(),
                                                          known("image_mean"), known("image_std")));
    spdlog::info("[export] detectron2 config beside it: {}", config);
  }
  if (openmmlab) {
    const std::string config = std::filesystem::path(a.output).replace_extension(".py").string();
    auto known = [&](const char* key) { return metadata.count(key) ? metadata.at(key) : std::string(); };
    write_file_atomic(config, exporting::openmmlab_config(layout, a.arch, std::filesystem::path(a.output).filename().string(),
                                                         known("image_mean"), known("image_std")));
    spdlog::info("[export] {} config beside it: {}", a.layout, config);
  }
  spdlog::info("[export] wrote {} ({} tensors, {} classes{}) as {} to {} (keys of {}'s {})", a.arch, tensors.size(),
               w.student->num_classes(), w.head ? ", with head" : "",
               format == exporting::WeightsFormat::kSafetensors ? "safetensors" : "torchvision .pth", a.output,
               a.layout, exporting::layout_model_name(layout, a.arch));
  if (metadata.count("image_mean"))
    spdlog::info("[export] trained on {} px RGB images normalised with mean {} std {} (teacher {}){}",
                 metadata["image_size"], metadata["image_mean"], metadata["image_std"], metadata["teacher"],
                 sidecar.empty() ? std::string("; recorded in the file's __metadata__") : "; recorded in " + sidecar);
  else
    spdlog::info("[export] input normalisation: not recorded (only an lgd checkpoint, or an export of one, knows it)");
  return 0;
}

}  // namespace

void add_export_command(CLI::App& app, Commands& commands) {
  auto a = std::make_shared<ExportArgs>();
  auto* cmd = app.add_subcommand(
      "export", "Write student weights as a torchvision .pth or a .safetensors file");
  cmd->footer(
      "Keys are torchvision's (--layout timm / detectron2 / mmdet / mmseg: those frameworks'): torchvision.models.\n"
      "<arch>() loads the file. A model without classifier loads with strict=False (missing:\n"
      "exactly the classifier keys); one with a classifier (--num-classes N) with strict=True.\n"
      "The training input (mean, std, size) goes into a .safetensors file's metadata, or into a\n"
      "JSON file beside a .pth (x.pth -> x.json), when the weights record it (an lgd checkpoint).\n"
      "Examples:\n"
      "  lgd export --checkpoint runs/r18/checkpoints/last.ckpt -o r18_lgd.pth\n"
      "  lgd export --arch resnet18 --init random --seed 0 -o resnet18.pth\n"
      "  lgd export --arch mobilenet_v2 --init random --layout mmdet -o mobilenet_v2_mmdet.pth\n"
      "  /usr/bin/python3 -c \"import torch, torchvision; m = torchvision.models.resnet18(); \\\n"
      "      print(m.load_state_dict(torch.load('resnet18.pth', weights_only=True), strict=False))\"");
  cmd->add_option("--arch", a->arch,
                  "Student architecture (see 'lgd info'); with --checkpoint, the checkpoint's");
  auto* checkpoint = cmd->add_option("--checkpoint", a->checkpoint,
                                     "An lgd train checkpoint (runs/NAME/checkpoints/*.ckpt): "
                                     "its student (and head, with --with-head)")
                         ->check(CLI::ExistingFile);
  auto* weights = cmd->add_option("--weights", a->weights,
                                  "Source weights: a torch.save .pth (torchvision state dict, "
                                  "lgd export in any --layout, timm's own, a SEED / LGD / MoCo checkpoint) or a "
                                  ".safetensors file")
                      ->check(CLI::ExistingFile);
  auto* init = cmd->add_option("--init", a->init,
                               "Initialise instead of loading: 'random' "
                               "(torchvision's scheme, seeded by --seed)")
                   ->check(CLI::IsMember({"random"}));
  weights->excludes(init);
  checkpoint->excludes(weights);
  checkpoint->excludes(init);
  cmd->add_option("--seed", a->seed, "Seed of the random initialisation (and of a classifier --num-classes builds)")
      ->capture_default_str();
  cmd->add_option("--num-classes", a->num_classes,
                  "Classifier outputs; 0 exports without classifier. Default: as in --weights "
                  "(none for --init random)")
      ->check(CLI::Range(std::int64_t{0}, kMaxClasses));
  cmd->add_option("--format", a->format,
                  "torchvision (.pth for torch.load) or safetensors; default from the output "
                  "extension (.safetensors, else torchvision)")
      ->check(CLI::IsMember({"torchvision", "safetensors"}));
  cmd->add_option("--layout", a->layout,
                  "Key names of: torchvision (torchvision.models.<arch>), timm (timm.create_model: "
                  "resnet18/34/50, mobilenetv2_100, mobilenetv3_large_100, mobilenetv3_small_100, "
                  "efficientnet_b0), detectron2 (the ResNets, with a config snippet as <output>.yaml), mmdet "
                  "(ResNets, MobileNetV2, EfficientNet-B0) or mmseg (ResNets, MobileNetV2, MobileNetV3), with "
                  "an mmengine config snippet as <output>.py")
      ->check(CLI::IsMember(exporting::layout_names()))
      ->capture_default_str();
  cmd->add_option("-o,--output", a->output,
                  "Output file (written to a temporary file, then renamed)")
      ->required();
  cmd->add_flag("--with-head", a->with_head,
                "Also export LGD's projection head under 'head.' (Linear(F,F)-ReLU-Linear(F,D))");
  cmd->add_option("--embed-dim", a->embed_dim,
                  "Head output width D, for --with-head --init random");
  commands.push_back({cmd, [a] { return run_export(*a); }});
}

}  // namespace lgd::cli
