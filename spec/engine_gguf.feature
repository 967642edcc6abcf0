Feature: Engine GGUF files
  The engine reads GGUF version 2 and 3 files by mapping them read-only, and checks every
  count, length, offset, alignment, dimension and type against the file before using it.
  A bad file is refused with RB_EFORMAT (RB_EUNSUPPORTED for a version or tensor type the
  engine does not read) and a one-line message naming the key or tensor and the value.
  The writer produces version 3 files atomically, with tensor data aligned to 32 bytes.

  Scenario: A written file reads back with every value type
    Given a writer with one key of each type: u8 200, i8 -100, u16 60000, i16 -30000,
      u32 4000000000, i32 -2000000000, f32 1.5, bool true, str "héllo", u64 2^40,
      i64 -2^40, f64 0.25, an array of 3 i32 and an array of 2 strings
    When it is written to "all.gguf" and opened
    Then the version is 3 and there are 14 keys
    And each key has its type and its value
    And the u8 key reads as u32 200 and the i64 key -2^40 is refused by get_u32

  Scenario: Tensors round-trip with their type, shape and data
    Given a writer with an f32 tensor "a" of 4 x 3, a q8_0 tensor "b" of 64 x 2 and an f16 tensor "c" of 7
    When the file is written and opened
    Then there are 3 tensors with the same names, types, dimensions and bytes
    And every tensor's data starts at a multiple of 32 bytes from the start of the file

  Scenario: Setting a key twice keeps the last value
    Given a writer where "x" is set to 1 and then to 2
    When the file is written and opened
    Then there is one key "x" with value 2

  Scenario: The writer leaves no temporary file behind
    When a file is written into an empty folder
    Then the folder holds only that file

  Scenario: Copying metadata keeps every key
    Given a file with 14 keys of every type, including a nested array
    When a writer copies its keys and writes a new file
    Then the new file's keys have the same names, types and encoded values

  Scenario: Version 2 files are read
    Given a valid file whose version field is 2
    When it is opened
    Then it opens and reports version 2

  Scenario: A truncated file is refused
    Given a valid 2-tensor file of about 600 bytes
    When each of its prefixes, from 0 bytes to one byte short, is opened from memory
    Then every one is refused with RB_EFORMAT and a message, and none crashes

  Scenario: A bad magic is refused
    Given a file starting with "GGUX"
    Then opening it fails with RB_EFORMAT and a message containing "bad magic"

  Scenario: An unsupported version is refused
    Given a file with version 4, and one with version 1
    Then opening fails with RB_EUNSUPPORTED and a message containing "unsupported GGUF version 4"

  Scenario: A huge key count is refused
    Given a file claiming 2^60 keys
    Then opening fails with RB_EFORMAT and a message containing "key count"

  Scenario: A huge tensor count is refused
    Given a file claiming 2^40 tensors
    Then opening fails with RB_EFORMAT and a message containing "tensor count"

  Scenario: A string length past the end is refused
    Given a file whose key "general.name" claims a 1000000-byte string
    Then opening fails with RB_EFORMAT and a message containing "general.name" and "runs past end of file"

  Scenario: A huge array length is refused
    Given a file whose key "a" is an array of 2^62 u32
    And a file whose key "n" is an array of arrays whose inner array claims 2^50 elements
    Then both fail with RB_EFORMAT and messages naming the key and "count"

  Scenario: Arrays nested too deep are refused
    Given a file whose key "deep" nests arrays 9 levels deep
    Then opening fails with RB_EFORMAT and a message containing "nested deeper than 8"

  Scenario: A tensor past the end of the file is refused
    Given a file whose tensor "blk.3.attn_q.weight" has an offset of 4096 beyond its data
    Then opening fails with RB_EFORMAT and the message "tensor 'blk.3.attn_q.weight' extends past end of file (offset ..., size 64, file ...)"

  Scenario: An unknown tensor type is refused
    Given a file whose tensor "w" has type 99
    Then opening fails with RB_EUNSUPPORTED and the message "tensor 'w' has unknown type 99"

  Scenario: An unsupported tensor type is refused
    Given a file whose tensor "w" has type 16 (iq2_xxs)
    Then opening fails with RB_EUNSUPPORTED and a message naming "w", "iq2_xxs" and "(16)"
    And types 21 (iq3_s) and 39 (mxfp4) are refused by name the same way

  Scenario: A tensor with more than 4 dimensions is refused
    Given a file whose tensor "w" has 5 dimensions
    Then opening fails with RB_EFORMAT and the message "tensor 'w' has 5 dimensions, at most 4"

  Scenario: A zero dimension is refused
    Given a file whose tensor "w" has dimensions 4 x 0
    Then opening fails with RB_EFORMAT and a message naming "w" and "dimension 1 is 0"

  Scenario: An overflowing dimension product is refused
    Given a file whose tensor "w" has dimensions 2^40 x 2^40
    Then opening fails with RB_EFORMAT and a message naming "w" and "overflows"

  Scenario: A misaligned tensor offset is refused
    Given a file whose tensor "w" has offset 8 with alignment 32
    Then opening fails with RB_EFORMAT and a message naming "w" and "not a multiple of the alignment 32"

  Scenario: A bad alignment is refused
    Given a file whose key "general.alignment" is 48
    Then opening fails with RB_EFORMAT and a message containing "power of two, got 48"

  Scenario: Duplicate keys are refused
    Given a file with the key "k" twice
    Then opening fails with RB_EFORMAT and a message containing "duplicate key 'k'"

  Scenario: Duplicate tensors are refused
    Given a file with the tensor "w" twice
    Then opening fails with RB_EFORMAT and a message containing "duplicate tensor 'w'"

  Scenario: A too long tensor name is refused
    Given a file whose tensor name is 200 bytes long
    Then opening fails with RB_EFORMAT and a message containing "at most 127"

  Scenario: A missing file is reported
    When "/nonexistent/x.gguf" is opened
    Then it fails with RB_ENOTFOUND and the message "no such file or directory"
