#pragma once
// A teacher bundle (a directory with lgd_teacher.yaml, two TorchScript encoders and a
// tokenizer file) and the frozen teacher loaded from it.
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lgd/text/tokenizer.h"

namespace lgd::distill {

struct TeacherManifest {
  std::string name;
  std::int64_t embed_dim = 0;
  struct Image {
    std::string file;
    std::int64_t size = 0;
    std::vector<double> mean;
    std::vector<double> std;
  } image;
  struct Text {
    std::string file;
    std::int64_t context_length = 0;
    struct Tokenizer {
      std::string type;  // clip-bpe | sentencepiece
      std::string file;
      std::int64_t merges = 48894;  // clip-bpe
      std::int64_t bos_id = -1;     // sentencepiece
      std::int64_t eos_id = -1;
      std::int64_t pad_id = 0;
      bool lower_case = false;
    } tokenizer;
  } text;
  std::string classnames;  // optional files shipped in the bundle
  std::string templates;
};

// Parses DIR/lgd_teacher.yaml (unknown keys, types and missing fields are ConfigErrors
// naming file:line and key) and checks that the files it names exist.
TeacherManifest read_manifest(const std::string& dir);

// The tokenizer a manifest describes (files resolved against the bundle directory `dir`).
std::unique_ptr<text::Tokenizer> make_tokenizer(const std::string& dir,
                                                const TeacherManifest& manifest);

class Teacher {
 public:
  // Loads and validates a bundle: manifest, both encoders (one dummy forward each checks
  // input rank and output width = embed_dim), tokenizer. Frozen by construction: eval mode,
  // no parameter requires grad, forwards run without autograd.
  static std::unique_ptr<Teacher> load(const std::string& dir);
  ~Teacher();

  const TeacherManifest& manifest() const { return manifest_; }
  const std::string& dir() const { return dir_; }
  const text::Tokenizer& tokenizer() const { return *tokenizer_; }

  // Runs both encoders on `device`, the image encoder in `dtype` (e.g. CUDA in bfloat16 or
  // float16; float32 by default), the text encoder in float32. Inputs are moved and cast by
  // the encode functions; outputs are float32.
  void to(torch::Device device, torch::ScalarType dtype);

  // Readies the image encoder for many forwards on its device and dtype (call after to();
  // a later to() undoes it). `channels_last`: its 4-D weights in the channels-last layout
  // the training inputs have, so convolutions do not reformat them on every call. `freeze`:
  // the encoder frozen as torch.jit.freeze freezes it (parameters become constants of the
  // graph; BatchNorm after a convolution, and an add / mul of a constant, folded into it).
  // Outputs equal the unfrozen encoder's up to rounding (the folded weights are computed in
  // the encoder's dtype). An encoder that cannot be frozen (a warning names its file) runs
  // as loaded.
  void optimize_image_encoder(bool channels_last, bool freeze);
  bool image_encoder_frozen() const;
  torch::Device device() const { return device_; }
  torch::ScalarType dtype() const { return dtype_; }

  // [B, 3, S, S] float, normalised with manifest().image mean/std -> [B, D], not normalised.
  torch::Tensor encode_images(const torch::Tensor& images) const;
  // [N, L] int64 token ids -> [N, D], not normalised.
  torch::Tensor encode_tokens(const torch::Tensor& tokens) const;
  // Tokenizes (error on overlong text) and encodes: [texts.size(), D].
  torch::Tensor encode_texts(const std::vector<std::string>& texts) const;

  // Every parameter and buffer of both encoders as loaded (a frozen image encoder is made
  // from these), for checks that the teacher never moves.
  std::vector<torch::Tensor> state() const;

 private:
  Teacher() = default;
  struct Modules;
  std::string dir_;
  TeacherManifest manifest_;
  std::unique_ptr<Modules> modules_;
  std::unique_ptr<text::Tokenizer> tokenizer_;
  torch::Device device_ = torch::kCPU;
  torch::ScalarType dtype_ = torch::kFloat32;
};

}  // namespace lgd::distill
