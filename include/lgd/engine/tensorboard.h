#pragma once
// TensorBoard scalars without TensorFlow: an event file of TFRecords (length, masked CRC-32C
// of the length, the serialised Event protobuf, masked CRC-32C of the data), holding a
// file_version event and one Summary.Value{tag, simple_value} per scalar.
#include <cstdint>
#include <cstdio>
#include <string>

namespace lgd::engine {

// CRC-32C (Castagnoli), and TFRecord's masking of it.
std::uint32_t crc32c(const void* data, std::size_t size);
std::uint32_t masked_crc32c(const void* data, std::size_t size);

class EventWriter {
 public:
  // Creates <dir>/events.out.tfevents.<unix time>.<host>.<pid> (IoError when it cannot).
  explicit EventWriter(const std::string& dir);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  void scalar(const std::string& tag, double value, std::int64_t step);
  // SessionLog{status: START} at `step`: TensorBoard's readers (purge_orphaned_data, their
  // default) drop what earlier files logged at `step` and later, as after a restarted writer.
  void restart(std::int64_t step);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_event(const std::string& event);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace lgd::engine
