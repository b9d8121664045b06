//! Redis' inline command splitting (`sdssplitargs`): spaces separate arguments, double
//! quotes allow `\n \r \t \b \a \\ \"` and `\xHH` escapes, single quotes allow `\'`, and a
//! closing quote must be followed by a space or the end of the line.

use super::ProtocolError;

/// Splits one inline request line (without its line ending) into arguments.
pub fn split_inline(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            return Ok(args);
        }
        let mut cur = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            let c = line.get(i).copied();
            if in_double {
                match c {
                    None => return Err(ProtocolError::UnbalancedQuotes),
                    Some(b'\\') if line.get(i + 1) == Some(&b'x') => {
                        let hex = (line.get(i + 2), line.get(i + 3));
                        if let (Some(&h), Some(&l)) = hex {
                            if let (Some(h), Some(l)) = (hex_val(h), hex_val(l)) {
                                cur.push(h * 16 + l);
                                i += 4;
                                continue;
                            }
                        }
                        cur.push(b'\\');
                        i += 1;
                    }
                    Some(b'\\') if i + 1 < line.len() => {
                        cur.push(match line[i + 1] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                        i += 2;
                    }
                    Some(b'"') => {
                        i = after_closing_quote(line, i)?;
                        break;
                    }
                    Some(b) => {
                        cur.push(b);
                        i += 1;
                    }
                }
            } else if in_single {
                match c {
                    None => return Err(ProtocolError::UnbalancedQuotes),
                    Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                        cur.push(b'\'');
                        i += 2;
                    }
                    Some(b'\'') => {
                        i = after_closing_quote(line, i)?;
                        break;
                    }
                    Some(b) => {
                        cur.push(b);
                        i += 1;
                    }
                }
            } else {
                match c {
                    None => break,
                    Some(b) if b.is_ascii_whitespace() => break,
                    Some(b'"') => {
                        in_double = true;
                        i += 1;
                    }
                    Some(b'\'') => {
                        in_single = true;
                        i += 1;
                    }
                    Some(b) => {
                        cur.push(b);
                        i += 1;
                    }
                }
            }
        }
        args.push(cur);
    }
}

/// The position after a closing quote at `i`; Redis wants a space or the end after it.
fn after_closing_quote(line: &[u8], i: usize) -> Result<usize, ProtocolError> {
    if line.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace()) {
        return Err(ProtocolError::UnbalancedQuotes);
    }
    Ok(i + 1)
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|v| v as u8)
}
