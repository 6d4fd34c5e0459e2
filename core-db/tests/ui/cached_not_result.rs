use core_db::cached;
use core_db::infra::cache::Cache;

#[cached(cache = cache, key = "answer")]
async fn answer(cache: &Cache) -> u32 {
    let _ = cache;
    42
}

fn main() {}
