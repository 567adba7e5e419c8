fn main() {
    println!("granary: being built");
}
