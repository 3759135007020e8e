"""From a chosen config to deployment: published weights in (:mod:`.weights`), ONNX out and
onnxruntime timings (:mod:`.onnx`)."""
