//! The hello example as a WASI 0.2 component (built for `wasm32-wasip2`):
//! greets the names given as arguments (or "world") with `$GREETING`.

fn main() {
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_string());
    let names: Vec<String> = std::env::args().skip(1).collect();
    let who = if names.is_empty() {
        "world".to_string()
    } else {
        names.join(" and ")
    };
    println!("{greeting}, {who}! (from a wasip2 component)");
}
