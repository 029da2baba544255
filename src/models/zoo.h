#pragma once
// Constructors of the concrete students (src/models only); create_student dispatches here.
#include <cstdint>
#include <memory>

#include "lgd/models/student.h"

namespace lgd::models::detail {

std::shared_ptr<Student> make_resnet(const std::string& arch, std::int64_t num_classes);
std::shared_ptr<Student> make_mobilenet_v2(std::int64_t num_classes);
std::shared_ptr<Student> make_mobilenet_v3(bool large, std::int64_t num_classes);
std::shared_ptr<Student> make_efficientnet_b0(std::int64_t num_classes);

}  // namespace lgd::models::detail
