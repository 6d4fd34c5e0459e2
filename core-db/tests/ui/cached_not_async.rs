use core_db::cached;
use core_db::infra::cache::Cache;

#[cached(cache = cache, key = "answer")]
fn answer(cache: &Cache) -> core_db::Result<u32> {
    let _ = cache;
    Ok(42)
}

fn main() {}
