//! Kettle's sample cargo project: prints a greeting with its FNV-1a hash.

use std::hash::Hasher;

fn main() {
    let greeting = "hello from a kettle build";
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(greeting.as_bytes());
    let mut len = itoa::Buffer::new();
    println!("{greeting} (fnv1a64 {}, {} bytes)", hex::encode(hasher.finish().to_be_bytes()), len.format(greeting.len()));
}
