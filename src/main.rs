fn main() {
    println!("trowel {}", env!("CARGO_PKG_VERSION"));
}
