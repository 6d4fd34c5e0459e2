use core_db::cached;

#[cached(key = "answer:{id}", tags = ["answers"])]
async fn answer(id: u32) -> core_db::Result<u32> {
    Ok(id)
}

fn main() {}
