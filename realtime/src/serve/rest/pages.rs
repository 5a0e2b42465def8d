//! Pages for people: the login form (whose CSRF field spinnman's client reads with a fixed
//! pattern, so its markup must not change) and a plain page frame, server-rendered HTML in the
//! reports' palette with no JavaScript.

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

const STYLE: &str = "body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:2em;color:#222}\
h1{font-size:1.4em;color:#1f4e79}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em}\
th{background:#eef3f8;text-align:left}.err{color:#b22222}";

/// A page with a title and a body (HTML, already escaped where needed).
pub fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n<title>{t} — spinnbed</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n{body}\n</body>\n</html>\n",
        t = esc(title)
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
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
