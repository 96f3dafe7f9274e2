//! Where the time of unpacking a layer goes: the harness behind the unpack figures in
//! bench/README.md ("Unpacking a base").
//!
//! Not a timed test (timings on a shared machine are not pass/fail material): run it by hand,
//! optimised, on a layer blob and a directory on the file system to measure, e.g. the Debian
//! minbase layer of the bench's registry and a tmpfs:
//!
//! ```sh
//! cargo run --release -p trowel-engine --example unpack_profile -- BLOB DIR [REPS]
//! ```
//!
//! Each repetition measures, in turn: reading the blob, inflating it, inflating and hashing it
//! (the diff_id), and the whole unpack as the unpacked-layer store does it (`overlay_lower`,
//! owners kept, the diff_id checked: inflating, hashing and applying on three threads) into a
//! fresh directory under DIR, which is then deleted (outside the timed region). The median of
//! each is printed.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use trowel_engine::digest::Hasher;
use trowel_engine::fs::unpack::{UnpackOptions, open_layer, open_layer_hashed, unpack_layer};
use trowel_engine::fs::{Root, remove::remove_tree};

fn drain(mut r: impl Read, mut each: impl FnMut(&[u8])) -> u64 {
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).expect("read");
        if k == 0 {
            return n;
        }
        each(&buf[..k]);
        n += k as u64;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: unpack_profile BLOB DIR [REPS]");
        std::process::exit(2);
    }
    let (blob, dir) = (Path::new(&args[0]), Path::new(&args[1]));
    let reps: usize = args.get(2).map(|r| r.parse().expect("REPS: a number")).unwrap_or(5);
    let open = || std::fs::File::open(blob).expect("open blob");
    let mut times: [Vec<f64>; 5] = Default::default();
    let mut stats = None;
    for rep in 0..reps {
        let t = Instant::now();
        drain(open(), |_| {});
        times[0].push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let mut h = Hasher::new();
        drain(open(), |b| h.update(b));
        let _ = h.finish();
        times[1].push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        drain(open_layer(open()).expect("open layer"), |_| {});
        times[2].push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let mut h = Hasher::new();
        drain(open_layer(open()).expect("open layer"), |b| h.update(b));
        let _ = h.finish();
        times[3].push(t.elapsed().as_secs_f64());

        let target = dir.join(format!("unpack-profile-{rep}"));
        std::fs::create_dir(&target).expect("create target");
        let root = Root::open(&target).expect("open root");
        let opts = UnpackOptions { overlay_lower: true, allow_devices: true, ..UnpackOptions::default() };
        let t = Instant::now();
        let mut reader = open_layer_hashed(open()).expect("open layer");
        let s = unpack_layer(&root, &mut reader, &opts).expect("unpack");
        drain(&mut reader, |_| {});
        assert!(reader.digest().is_some(), "the diff_id was computed");
        times[4].push(t.elapsed().as_secs_f64());
        stats = Some(s);
        drop(root);
        remove_tree(&target).expect("remove target");
    }
    let s = stats.expect("one repetition");
    println!("{} entries, {:.1} MB of file data, median of {reps}:", s.entries, s.bytes as f64 / 1e6);
    for (what, v) in ["read blob", "sha256 blob", "inflate", "inflate + sha256", "unpack (store)"].iter().zip(times) {
        println!("  {what:18} {:7.1} ms", median(v) * 1e3);
    }
}
