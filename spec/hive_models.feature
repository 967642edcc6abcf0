Feature: Model catalog and provisioning
  The hive resolves model references, downloads with resume and retries, publishes progress as
  SSE, and writes a catalog row only for a complete, checked file (docs/architecture.md §4.1, §7).

  Background:
    Given a fresh RBEE_HOME
    And a local file server acting as HF_ENDPOINT with "org/repo/model.gguf" of 3 MB

  Scenario: A download publishes progress in order and completes
    When a client posts {"model_ref":"hf:org/repo/model.gguf"} to /v1/models/download
    Then the reply has a download_id and local_path null
    And the progress stream shows "downloading" events with bytes_downloaded rising to 3145728, then "complete" with the local_path, then [DONE]
    And GET /v1/models lists the model with size_bytes 3145728

  Scenario: A dropped connection is resumed with a Range request
    Given the file server drops the connection after 1 MB on the first attempt
    When the model is downloaded
    Then the second attempt sends "Range: bytes=1048576-" and the file is complete and identical

  Scenario: A download that fails every time leaves no file and no row
    Given the file server answers 500 for every request
    When the model is downloaded
    Then the progress stream ends with {"stage":"error","code":"DOWNLOAD_FAILED"} after 6 attempts
    And no file remains under models/ and GET /v1/models is empty

  Scenario: A file that is not GGUF is refused
    Given the file server serves "org/repo/bad.gguf" starting with "<html>"
    When the model is downloaded
    Then the stream ends with code "NOT_GGUF" and no row is written

  Scenario: A file whose checksum does not match is refused
    Given the file server announces a SHA-256 (X-Linked-Etag) that does not match the file
    When the model is downloaded
    Then the stream ends with code "CHECKSUM_MISMATCH", no file remains and no row is written

  Scenario: A catalog hit answers cached
    Given "hf:org/repo/model.gguf" was downloaded
    When it is requested again
    Then the reply is {"download_id":"cached","local_path":"<path>"}

  Scenario: Concurrent requests share one download
    When two clients request "hf:org/repo/model.gguf" at once
    Then both get the same download_id and the file server sees one transfer

  Scenario: A repo without a file name picks the Q4_K_M file
    Given the repo "org/multi" lists model-Q8_0.gguf, model-Q4_K_M.gguf and model-F16.gguf
    When "hf:org/multi" is requested
    Then model-Q4_K_M.gguf is downloaded

  Scenario: Local files and the bundled model resolve without a download
    When "file:/abs/path/model.gguf" or the bundled model's name is requested
    Then the reply is cached with that local path

  Scenario: Bad model references are refused
    When a client requests "ftp:x", "hf:", "hf:org" or "file:relative.gguf"
    Then each answers 400 with code "INVALID_MODEL_REF"

  Scenario: Stopping the hive during a download keeps the partial file and the next hive resumes it
    Given the file server sends at 256 KB/s
    When the hive receives SIGTERM while the model is downloading
    Then the hive exits 0, only model.gguf.part remains under models/, holding some bytes, and no row is written
    When a new hive on the same home downloads the model again at full speed
    Then its request asks for the rest with a Range from the partial file's size, and the model completes with its whole size

  Scenario: A late subscriber still sees the end
    Given a download that finished and whose first progress stream has ended
    When a client opens its progress stream again
    Then it receives the "complete" event and [DONE]
    And once the keep time has passed (60 s; 1 s in the test) the download id answers 404

  Scenario: file references are confined to the model folders
    Given a hive whose model folders are $RBEE_HOME/models, the bundled model's folder and one --models-dir folder
    When file: references name a .gguf file in each of them
    Then each resolves
    When they name an existing .gguf file elsewhere, a missing one elsewhere, or a link in $RBEE_HOME/models to a file elsewhere
    Then each gets the same 403 MODEL_PATH_FORBIDDEN, which reveals neither content nor existence
    And a path that is not a .gguf file (file:/etc/shadow) gets 400 without its content
    And a missing file inside the model folders gets 404 and a folder named x.gguf gets 400

  Scenario: A downloaded model is removed, but not while a worker serves it
    Given hf:org/repo/model.gguf downloaded and a worker spawned on it
    When a client posts {"model_ref":"hf:org/repo/model.gguf"} to /v1/models/delete
    Then it gets 409 MODEL_IN_USE naming the worker, and the file stays
    When the worker is shut down and the client posts {"model_ref":"hf:org/repo"}
    Then it gets 200 with the reference, path and size, the file is gone and the catalog empty
    And a second removal gets 404 MODEL_NOT_FOUND, and the bundled model or a file: reference 400 INVALID_MODEL_REF
    And downloading it again right after downloads it again: the file and its row are back

  Scenario: A full disk during a download ends it cleanly
    Given a hive whose files may not grow past 1 MiB (RLIMIT_FSIZE: writes fail with EFBIG)
    When it downloads the 3 MB model
    Then the download ends in an error naming the write failure, after one attempt
    And neither the model nor its .part is left, no row is written, and the hive still serves with as many descriptors as before
