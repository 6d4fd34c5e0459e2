# Requests the docs site shows against the examples' routers (core-docs/snippets/*.rs), served
# by `cargo run` of each example on localhost:3000. Not run by bash: core-docs/tests/snippets.rs
# reads each region, builds the request curl would send (method, URL, headers, body) and sends it
# to the example's router, then checks the answer against the JSON the page shows beside it
# (core-docs/snippets/json/). A command here that curl would not send as written fails that test.

# region: try-it
curl -s localhost:3000/hello
curl -s localhost:3000/nope -H 'accept-language: zh-CN'
# endregion: try-it

# region: datatable-page
curl -sg 'localhost:3000/api/v1/articles?filter[status]=published&sort=-views&per_page=2'
# endregion: datatable-page

# region: welcome
curl -s localhost:3000/welcome -H 'accept-language: zh-CN'
# endregion: welcome

# region: upload-cover
curl -s -X POST localhost:3000/articles/1/cover -F cover=@photo.png
# endregion: upload-cover

# region: malformed-json
curl -s localhost:3000/articles -H 'content-type: application/json' -d '{"title": "x",}'
# endregion: malformed-json
