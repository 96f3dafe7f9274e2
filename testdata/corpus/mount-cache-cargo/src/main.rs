fn main() {
    println!("hello from a crate built with its target directory on a cache mount");
}
