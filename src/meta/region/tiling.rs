//! The tiling invariant: once bootstrapped, the regions cover the key space with no gap and
//! no overlap.

use super::keys::hex;
use super::record::Region;

/// Why a list of regions does not tile the key space.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TilingError {
    #[error("no regions")]
    Empty,
    #[error("region {region_id} is first but starts at {}", hex(start))]
    FirstStart { region_id: u64, start: Vec<u8> },
    #[error("region {region_id} is empty or inverted")]
    EmptyRange { region_id: u64 },
    #[error(
        "region {left} ends at {} but region {right} starts at {}",
        hex(end),
        hex(start)
    )]
    Seam {
        left: u64,
        right: u64,
        end: Vec<u8>,
        start: Vec<u8>,
    },
    #[error("region {region_id} is last but does not end at infinity")]
    LastEnd { region_id: u64 },
}

/// Check that `regions`, in key order, tile the whole key space with no gap or overlap.
pub fn check_tiling(regions: &[Region]) -> std::result::Result<(), TilingError> {
    let first = regions.first().ok_or(TilingError::Empty)?;
    if !first.start.is_empty() {
        return Err(TilingError::FirstStart {
            region_id: first.id,
            start: first.start.clone(),
        });
    }
    for r in regions {
        if !r.end.is_empty() && r.start >= r.end {
            return Err(TilingError::EmptyRange { region_id: r.id });
        }
    }
    for pair in regions.windows(2) {
        let (left, right) = (&pair[0], &pair[1]);
        // an infinite end before the last region is a seam with the next start
        if left.end.is_empty() || left.end != right.start {
            return Err(TilingError::Seam {
                left: left.id,
                right: right.id,
                end: left.end.clone(),
                start: right.start.clone(),
            });
        }
    }
    let last = regions.last().expect("regions is not empty");
    if !last.end.is_empty() {
        return Err(TilingError::LastEnd { region_id: last.id });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::region;
    use super::*;

    #[test]
    fn tiling_cases() {
        let ok = vec![
            region(1, b"", b"b"),
            region(2, b"b", b"d"),
            region(3, b"d", b""),
        ];
        assert_eq!(check_tiling(&ok), Ok(()));
        assert_eq!(check_tiling(&[region(1, b"", b"")]), Ok(()));
        assert_eq!(check_tiling(&[]), Err(TilingError::Empty));
        let cases: Vec<Vec<Region>> = vec![
            vec![region(1, b"a", b"")],                       // first start
            vec![region(1, b"", b"b"), region(2, b"c", b"")], // gap
            vec![region(1, b"", b"c"), region(2, b"b", b"")], // overlap
            vec![region(1, b"", b"b")],                       // last end
            vec![region(1, b"", b""), region(2, b"", b"")],   // infinity before the last
            vec![
                region(1, b"", b"b"),
                region(2, b"b", b"b"),
                region(3, b"b", b""),
            ], // empty
        ];
        for regions in cases {
            assert!(check_tiling(&regions).is_err(), "{regions:?}");
        }
    }
}
