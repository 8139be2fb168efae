# The Spin app image for containerd-shim-spin: spin.toml at the root and the component at the path
# its `source` names, nothing else. Build the component first, then the image (from the repository
# root):
#
#   make component
#   docker buildx build --platform wasi/wasm --provenance=false -f images/app.Dockerfile \
#     -t ghcr.io/sidestream/sidestream-app:0.1.0 --push .
#
# (`spin registry push ghcr.io/sidestream/sidestream-app:0.1.0` makes an equivalent Spin OCI
# artifact, which the shim precompiles on pull.) gateway/tests/k8s_manifests.rs keeps the paths
# below in step with spin.toml.
FROM scratch
COPY spin.toml /spin.toml
COPY target/wasm32-wasip2/release/sidestream_component.wasm /target/wasm32-wasip2/release/sidestream_component.wasm
# Numeric, like the pod's runAsUser: the component needs no privileges of any kind.
USER 65532:65532
