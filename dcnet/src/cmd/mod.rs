//! One module per subcommand; each runs from a validated config (see `cli`).

pub mod aggregate;
pub mod audit;
pub mod bench;
pub mod churn;
pub mod demo;
pub mod export;
pub mod files;
pub mod gateway;
pub mod graph;
pub mod inspect;
pub mod keygen;
pub mod lock;
pub mod meter;
pub mod progress;
pub mod simulate;
pub mod tariff;

/// Client ids for a one-line message: the first `show`, comma separated, then how many more
/// there are (`-` for none), so that a line stays readable for a net of thousands.
pub fn list_ids(ids: &[u32], show: usize) -> String {
    if ids.is_empty() {
        return "-".to_string();
    }
    let shown: Vec<String> = ids.iter().take(show).map(u32::to_string).collect();
    let more = ids.len().saturating_sub(show);
    if more > 0 {
        format!("{} (+{more})", shown.join(","))
    } else {
        shown.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_id_lists_are_cut_and_counted() {
        assert_eq!(list_ids(&[], 3), "-");
        assert_eq!(list_ids(&[7, 8], 3), "7,8");
        assert_eq!(list_ids(&[7, 8, 9], 3), "7,8,9");
        assert_eq!(list_ids(&[7, 8, 9, 10, 11], 3), "7,8,9 (+2)");
    }
}
