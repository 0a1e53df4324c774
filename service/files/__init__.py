"""Files: `POST /v1/files` and its streaming multipart parser, the Uploads API (a file sent in
parts), their rows and schemas. Routes (`routes`, `upload_routes`) -> logic (`multipart`,
`uploads`) -> SQL (`repository`, `upload_repository`); the routes' session commits at the
end of the request."""
