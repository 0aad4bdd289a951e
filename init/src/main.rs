fn main() {
    eprintln!("kettle-init: not yet implemented");
    std::process::exit(2);
}
