#pragma once
// Key layouts of the frameworks a student is handed to. lgd's students carry torchvision's
// keys; a layout renames (and where needed reshapes) them into what another framework's own
// model of the same architecture loads with load_state_dict(strict=True), no conversion
// script in between.
#include <string>
#include <vector>

#include "lgd/models/state_dict.h"

namespace lgd::exporting {

enum class Layout { kTorchvision, kTimm, kDetectron2 };

// "torchvision" | "timm" | "detectron2"; UsageError listing them otherwise.
Layout parse_layout(const std::string& name);
std::vector<std::string> layout_names();

// The framework's model of `arch` under `layout`: torchvision.models.<name>(),
// timm.create_model(<name>), detectron2's ResNet of that depth ("R-18").
std::string layout_model_name(Layout layout, const std::string& arch);

// The detectron2 config lines that go with a detectron2-layout export of `arch` (a ResNet):
// the weights file, the ResNet's depth and widths, stride in the 3x3 convolution, RGB input
// and, where `mean` / `std` (0-1 units, comma-separated) are known, the pixel mean and std in
// detectron2's 0-255 units.
std::string detectron2_config(const std::string& arch, const std::string& weights_file, const std::string& mean,
                              const std::string& std);

// `tensors` (torchvision keys of `arch`, optionally "head.*" after them) in `layout`'s keys.
// The projection head keeps its "head." keys (detectron2: dropped, with the classifier).
// UsageError for a pair the framework has no model of (the message lists the pairs that exist).
models::NamedTensors to_layout(Layout layout, const std::string& arch, const models::NamedTensors& tensors);

}  // namespace lgd::exporting
