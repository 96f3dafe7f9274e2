//! Size and speed of trowel's layer gzip ([`trowel_engine::fs::pgzip`]) on real tarballs, per
//! level: the harness behind the pushed-size comparison in bench/README.md ("Pushed size").
//!
//! Not a timed test (timings on a shared machine are not pass/fail material): run it by hand,
//! optimised, on the tarballs to compare, e.g. W3's context and the Debian minbase root:
//!
//! ```sh
//! tar -cf /tmp/w3.tar -C /var/tmp/trowel-bench/cache/contexts/W3 .
//! cargo run --release -p trowel-engine --example gzip_sizes -- /tmp/w3.tar \
//!     /var/tmp/trowel-bench/cache/debian-bookworm-minbase.tar
//! ```
//!
//! Each file is read into memory once, then compressed at each level (`GZIP_LEVELS`, default
//! 1,2,6) with every core; the best of three runs is reported, and every output is decoded and
//! compared with the input, so a size is never that of a broken stream.

use std::io::{Read, Write};
use std::time::Instant;

use trowel_engine::fs::pgzip::ParallelGzip;

fn main() {
    let levels: Vec<u32> = std::env::var("GZIP_LEVELS")
        .unwrap_or_else(|_| "1,2,6".into())
        .split(',')
        .map(|l| l.trim().parse().expect("GZIP_LEVELS: comma-separated numbers 0-9"))
        .collect();
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: gzip_sizes FILE.tar... (GZIP_LEVELS=1,2,6)");
        std::process::exit(2);
    }
    println!("| input | MB | level | gzip MB | ratio | MB/s (best of 3) |");
    println!("|---|---|---|---|---|---|");
    for file in files {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mb = data.len() as f64 / 1e6;
        for &level in &levels {
            let mut best = f64::MAX;
            let mut out = Vec::new();
            for _ in 0..3 {
                let t = Instant::now();
                let mut g = ParallelGzip::new(Vec::with_capacity(data.len()), level);
                g.write_all(&data).expect("in memory");
                out = g.finish().expect("in memory");
                best = best.min(t.elapsed().as_secs_f64());
            }
            let mut back = Vec::with_capacity(data.len());
            flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut back).expect("decodes");
            assert!(back == data, "{file}: level {level} does not decode to its input");
            println!(
                "| {} | {:.1} | {} | {:.2} | {:.4} | {:.0} |",
                std::path::Path::new(&file).file_name().map_or(file.clone(), |n| n.to_string_lossy().into()),
                mb,
                level,
                out.len() as f64 / 1e6,
                out.len() as f64 / data.len() as f64,
                mb / best
            );
        }
    }
}
