//! Random input: protobuf-shaped messages (random fields of every wire type, nested
//! messages, plausible numbers and keys) and byte-level mutations of them, so that the
//! server's decoding sees both garbage and messages that decode and reach validation.

use rand::rngs::StdRng;
use rand::Rng;

/// A number the way requests carry them: mostly small, sometimes -1, 0, a boundary or
/// anything.
pub fn number(rng: &mut StdRng) -> u64 {
    match rng.gen_range(0..10) {
        0..=4 => rng.gen_range(0..8),
        5 => rng.gen_range(0..1_000),
        6 => u64::MAX, // -1 as an int64
        7 => [i64::MAX as u64, i64::MIN as u64, u32::MAX as u64, 1 << 31][rng.gen_range(0..4)],
        _ => rng.gen(),
    }
}

/// A key or a string: short, often one of a few, sometimes `\0` or arbitrary bytes.
pub fn bytes(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..8) {
        0 => Vec::new(),
        1 => vec![0],
        2..=4 => [
            "a",
            "b",
            "foo",
            "foo/bar",
            "root",
            "http://127.0.0.1:1",
            "\u{ff}",
        ][rng.gen_range(0..7)]
        .as_bytes()
        .to_vec(),
        5 => vec![0xff; rng.gen_range(1..4)],
        _ => (0..rng.gen_range(0..24)).map(|_| rng.gen()).collect(),
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A random message: a few fields of random numbers 1..=16 (sometimes larger), each with
/// a wire type that usually fits a proto field (varint, length-delimited, nested) and
/// sometimes does not.
pub fn message(rng: &mut StdRng, depth: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.gen_range(0..7) {
        let field: u64 = if rng.gen_bool(0.9) {
            rng.gen_range(1..=16)
        } else {
            rng.gen_range(1..=(1 << 20))
        };
        let wire = match rng.gen_range(0..20) {
            0..=8 => 0,
            9..=17 => 2,
            18 => 1,
            _ => [3, 4, 5, 6, 7][rng.gen_range(0..5)],
        };
        varint(&mut out, field << 3 | wire);
        match wire {
            0 => varint(&mut out, number(rng)),
            2 => {
                let body = if depth < 3 && rng.gen_bool(0.4) {
                    message(rng, depth + 1)
                } else {
                    bytes(rng)
                };
                varint(&mut out, body.len() as u64);
                out.extend(body);
            }
            1 => out.extend(number(rng).to_le_bytes()),
            5 => out.extend((number(rng) as u32).to_le_bytes()),
            _ => {}
        }
    }
    out
}

/// `msg` with a few byte-level changes: truncated, a byte flipped, inserted or removed, a
/// length claiming more than follows.
pub fn mutate(rng: &mut StdRng, mut msg: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.gen_range(0..3) {
        match rng.gen_range(0..5) {
            0 if !msg.is_empty() => msg.truncate(rng.gen_range(0..msg.len())),
            1 if !msg.is_empty() => {
                let i = rng.gen_range(0..msg.len());
                msg[i] ^= 1 << rng.gen_range(0..8);
            }
            2 => {
                let i = rng.gen_range(0..=msg.len());
                msg.insert(i, rng.gen());
            }
            3 if !msg.is_empty() => {
                msg.remove(rng.gen_range(0..msg.len()));
            }
            _ => {
                let i = rng.gen_range(0..=msg.len());
                msg.splice(i..i, [0x12, 0xff, 0xff, 0x03]);
            }
        }
    }
    msg
}

/// The input of one case: a random message, often mutated, now and then plain garbage.
pub fn input(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..10) {
        0 => (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect(),
        1..=4 => message(rng, 0),
        _ => {
            let m = message(rng, 0);
            mutate(rng, m)
        }
    }
}
