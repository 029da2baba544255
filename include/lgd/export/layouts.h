#pragma once
// Key layouts of the frameworks a student is handed to. lgd's students carry torchvision's
// keys; a layout renames (and where needed reshapes) them into what another framework's own
// model of the same architecture loads with load_state_dict(strict=True), no conversion
// script in between. The renaming runs both ways: weights in a framework's layout (timm's
// own checkpoints included) are read back into torchvision's keys.
#include <string>
#include <vector>

#include "lgd/models/state_dict.h"

namespace lgd::exporting {

enum class Layout { kTorchvision, kTimm, kDetectron2, kMmdet, kMmseg };

// "torchvision" | "timm" | "detectron2" | "mmdet" | "mmseg"; UsageError listing them otherwise.
Layout parse_layout(const std::string& name);
std::vector<std::string> layout_names();
std::string layout_name(Layout layout);

// The pairs a framework has a model of, e.g. "mmdet: resnet18, ..., efficientnet_b0".
std::string layout_pairs(Layout layout);

// The framework's model of `arch` under `layout`: torchvision.models.<name>(),
// timm.create_model(<name>), detectron2's ResNet of that depth ("R-18"), mmdet's / mmseg's
// backbone type ("MobileNetV2").
std::string layout_model_name(Layout layout, const std::string& arch);

// The detectron2 config lines that go with a detectron2-layout export of `arch` (a ResNet):
// the weights file, the ResNet's depth and widths, stride in the 3x3 convolution, RGB input
// and, where `mean` / `std` (0-1 units, comma-separated) are known, the pixel mean and std in
// detectron2's 0-255 units.
std::string detectron2_config(const std::string& arch, const std::string& weights_file, const std::string& mean,
                              const std::string& std);

// The mmengine config (Python) that goes with an mmdet / mmseg export: the backbone's type and
// the arguments that make it torchvision's network (activation, BatchNorm epsilon, padding),
// init_cfg loading the weights, and the data preprocessor's mean / std in 0-255 units with
// bgr_to_rgb (OpenMMLab loads images as BGR) where `mean` / `std` are known.
std::string openmmlab_config(Layout layout, const std::string& arch, const std::string& weights_file,
                             const std::string& mean, const std::string& std);

// `tensors` (torchvision keys of `arch`, optionally "head.*" after them) in `layout`'s keys.
// timm keeps the projection head's "head." keys; detectron2, mmdet and mmseg drop it with the
// classifier (their backbones have neither). UsageError for a pair the framework has no model
// of (the message lists the pairs that exist).
models::NamedTensors to_layout(Layout layout, const std::string& arch, const models::NamedTensors& tensors);

// The layout `tensors` of `arch` are in: torchvision when any key is one of the student's own,
// else the first layout whose renaming of the student's keys names every key in the file
// ("head.*" and num_batches_tracked aside). Returns false when none does; otherwise renames
// `tensors` into torchvision's keys and sets `layout`.
bool from_any_layout(const std::string& arch, models::NamedTensors& tensors, Layout& layout);

}  // namespace lgd::exporting
