//! Sets the linker flags a Node-API addon needs (napi-build).

fn main() {
    napi_build::setup();
}
