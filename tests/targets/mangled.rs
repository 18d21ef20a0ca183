// tests/targets/mangled.rs -- a Rust process blocked under functions whose symbol names
// need demangling: a method of a generic type in a module, a trait method and a closure.
// Built without DWARF (-C strip=debuginfo), once with legacy and once with v0 mangling,
// so its frames are named from .symtab alone. Prints `ready PID` just before it parks.

use std::io::Write;

pub trait Checkout {
    fn checkout(&self, depth: u32) -> u32;
}

pub mod shop {
    pub struct Cart<T> {
        pub items: Vec<T>,
    }

    impl<T: Copy + Into<u64>> Cart<T> {
        #[inline(never)]
        pub fn total(&self, depth: u32) -> u64 {
            let sum: u64 = self.items.iter().map(|&x| x.into()).sum();
            crate::pay(depth, |d| crate::park_forever(d)) as u64 + sum
        }
    }
}

impl Checkout for u64 {
    #[inline(never)]
    fn checkout(&self, depth: u32) -> u32 {
        let cart = shop::Cart { items: vec![*self as u32, depth] };
        cart.total(depth + 1) as u32
    }
}

#[inline(never)]
pub fn pay<F: Fn(u32) -> u32>(depth: u32, f: F) -> u32 {
    f(depth + 1) + 1
}

#[inline(never)]
pub fn park_forever(depth: u32) -> u32 {
    println!("ready {}", std::process::id());
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::park();
        if std::env::var_os("MANGLED_NEVER_SET").is_some() {
            return depth;
        }
    }
}

fn main() {
    let start = std::env::args().count() as u64;
    std::process::exit(start.checkout(1) as i32);
}
