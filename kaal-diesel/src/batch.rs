//! Splitting a batch so that each statement stays under the database's limit of bound
//! parameters (65 535 on PostgreSQL and MySQL, 32 766 on SQLite ≥ 3.32, 999 before).

/// `items` in chunks whose statements bind at most `max_params` parameters: `fixed` once per
/// statement plus `per_item` for each item. Every chunk holds at least one item.
///
/// ```
/// let keys: Vec<u32> = (0..10).collect();
/// let sizes: Vec<usize> = kaal_diesel::chunks_within(&keys, 2, 1, 9).map(|c| c.len()).collect();
/// assert_eq!(sizes, [4, 4, 2]);
/// ```
pub fn chunks_within<T>(
    items: &[T],
    per_item: usize,
    fixed: usize,
    max_params: usize,
) -> std::slice::Chunks<'_, T> {
    let per_item = per_item.max(1);
    let size = (max_params.saturating_sub(fixed) / per_item).max(1);
    items.chunks(size)
}

#[cfg(test)]
mod tests {
    use super::chunks_within;

    #[test]
    fn chunks_respect_the_limit_and_cover_every_item() {
        let items: Vec<usize> = (0..1000).collect();
        let chunks: Vec<&[usize]> = chunks_within(&items, 3, 2, 999).collect();
        assert!(chunks.iter().all(|c| 2 + 3 * c.len() <= 999));
        assert_eq!(chunks.concat(), items);
        assert_eq!(
            chunks_within(&items, 5, 10, 3).next().map(<[usize]>::len),
            Some(1)
        );
        assert_eq!(chunks_within::<u8>(&[], 1, 0, 10).count(), 0);
    }
}
