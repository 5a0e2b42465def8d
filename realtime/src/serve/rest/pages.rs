//! Pages for people: the login form (whose CSRF field spinnman's client reads with a fixed
//! pattern, so its markup must not change) and the page frame every page shares (the status
//! pages are in [`super::status`]), server-rendered HTML in the reports' palette with no
//! JavaScript.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The reports' look (`spinnbed-reports`' HTML: the same fonts, greys and Okabe–Ito blue),
/// with what the status pages add: the navigation bar, state badges, the board map's legend.
pub const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0 auto;\
max-width:1240px;padding:24px;color:#1a1a1a;background:#fff;line-height:1.45}
h1{font-size:1.8em;margin:0 0 .2em}h2{font-size:1.3em;margin:1.8em 0 .6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
p.sub{color:#555;margin:0 0 1em}
table{border-collapse:collapse;margin:.4em 0 1em;font-variant-numeric:tabular-nums}
th,td{padding:.3em .8em;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top}
th{background:#f3f3f3;font-weight:600}
td.num{text-align:right}
tr:nth-child(even) td{background:#fafafa}
a{color:#0072B2}
.note{color:#555;font-size:.92em}
.err{color:#D55E00;font-weight:600}
nav{display:flex;flex-wrap:wrap;align-items:center;gap:0 1.2em;border-bottom:1px solid #ddd;padding:0 0 .6em;margin:0 0 1.2em}
nav .who{margin-left:auto;color:#555}
nav form{display:inline;margin:0}
button{font:inherit;color:#0072B2;background:#fff;border:1px solid #0072B2;border-radius:3px;padding:.1em .6em;cursor:pointer}
.state{display:inline-block;padding:0 .45em;border-radius:3px;font-weight:600;font-size:.9em;color:#fff}
.st-QUEUED{background:#555}.st-POWER{background:#E69F00;color:#1a1a1a}.st-READY{background:#009E73}\
.st-DESTROYED{background:#999}.st-UNKNOWN{background:#999}
.map{margin:.6em 0 .4em;max-width:100%;height:auto}
.legend{display:flex;flex-wrap:wrap;gap:.3em 1.4em;color:#555;font-size:.92em;margin:0 0 1em}
.legend svg{vertical-align:middle;margin-right:.3em}
";

/// A whole page: `head` goes into `<head>` as it is (a refresh), `body` after the title.
pub fn html(title: &str, head: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\" />\n\
         <title>{t} — spinnbed</title>\n{head}<style>\n{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n",
        t = esc(title)
    )
}

/// An HTML response that is never cached (the pages show live state).
pub fn respond(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// A page with a title and a body (HTML, already escaped where needed).
pub fn page(title: &str, body: &str) -> Response {
    respond(
        StatusCode::OK,
        html(title, "", &format!("<h1>{}</h1>\n{body}", esc(title))),
    )
}

/// The login form, with the session's CSRF token on a line of its own (spinnman reads it with
/// the pattern `<input type="hidden" name="_csrf" value="(.*)" />`).
pub fn login_form(csrf: &str, error: Option<&str>) -> Response {
    let error = error.map_or(String::new(), |e| format!("<p class=\"err\">{}</p>\n", esc(e)));
    let body = format!(
        "{error}<form method=\"post\" action=\"/spalloc/system/perform_login\">\n\
         <input type=\"hidden\" name=\"_csrf\" value=\"{}\" />\n\
         <p><label>User <input type=\"text\" name=\"username\" autocomplete=\"username\" /></label></p>\n\
         <p><label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" /></label></p>\n\
         <p><button type=\"submit\" name=\"submit\" value=\"submit\">Log in</button></p>\n</form>",
        esc(csrf)
    );
    page("spalloc: log in", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_field_is_on_its_own_line_as_spinnman_reads_it() {
        let r = login_form("abc123", None);
        let body = futures_body(r);
        let line = body.lines().find(|l| l.contains("name=\"_csrf\"")).expect("the field");
        assert_eq!(line, "<input type=\"hidden\" name=\"_csrf\" value=\"abc123\" />");
        assert_eq!(esc("<a href='x'>&</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;");
    }

    fn futures_body(r: Response) -> String {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let bytes = rt.block_on(axum::body::to_bytes(r.into_body(), usize::MAX)).unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
