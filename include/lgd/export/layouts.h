#pragma once
// Key layouts of the frameworks a student is handed to. lgd's students carry torchvision's
// keys; a layout renames (and where needed reshapes) them into what another framework's own
// model of the same architecture loads with load_state_dict(strict=True), no conversion
// script in between.
#include <string>
#include <vector>

#include "lgd/models/state_dict.h"

namespace lgd::exporting {

enum class Layout { kTorchvision, kTimm };

// "torchvision" | "timm"; UsageError listing them otherwise.
Layout parse_layout(const std::string& name);
std::vector<std::string> layout_names();

// The framework's model of `arch` under `layout`: torchvision.models.<name>() or
// timm.create_model(<name>).
std::string layout_model_name(Layout layout, const std::string& arch);

// `tensors` (torchvision keys of `arch`, optionally "head.*" after them) in `layout`'s keys.
// The projection head keeps its "head." keys. UsageError for a pair the framework has no
// model of (the message lists the pairs that exist).
models::NamedTensors to_layout(Layout layout, const std::string& arch, const models::NamedTensors& tensors);

}  // namespace lgd::exporting
