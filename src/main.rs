fn main() {
    // The sandbox helper must start before anything else, threads in particular.
    if std::env::args().nth(1).as_deref() == Some("__sandbox-init") {
        trowel::sandbox::helper_main()
    }
    println!("trowel {}", env!("CARGO_PKG_VERSION"));
}
