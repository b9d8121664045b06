use super::*;

fn args_of(parser: &RequestParser, frame: &[u8]) -> Vec<Vec<u8>> {
    parser
        .spans()
        .iter()
        .map(|s| frame[s.start as usize..s.end as usize].to_vec())
        .collect()
}

/// Feeds `input` in pieces of `step` bytes and collects every request's arguments.
fn parse_all(input: &[u8], step: usize) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
    let mut parser = RequestParser::new(512 * 1024 * 1024);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in input.chunks(step.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            match parser.parse(&buf)? {
                Parsed::Incomplete { .. } => break,
                Parsed::Skip { len } => {
                    let _ = buf.split_to(len);
                }
                Parsed::Multibulk { len } => {
                    let frame = buf.split_to(len);
                    out.push(args_of(&parser, &frame));
                }
                Parsed::Inline { len, encoded } => {
                    let _ = buf.split_to(len);
                    out.push(args_of(&parser, &encoded));
                }
            }
        }
    }
    Ok(out)
}

#[test]
fn multibulk_split_at_every_byte_gives_the_same_requests() {
    let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*1\r\n$4\r\nPING\r\nPING x\r\n\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n";
    let whole = parse_all(input, input.len()).unwrap();
    assert_eq!(whole.len(), 4);
    assert_eq!(
        whole[0],
        vec![b"SET".to_vec(), b"k".to_vec(), b"hello".to_vec()]
    );
    assert_eq!(whole[2], vec![b"PING".to_vec(), b"x".to_vec()]);
    assert_eq!(whole[3], vec![b"GET".to_vec(), b"".to_vec()]);
    for step in 1..input.len() {
        assert_eq!(parse_all(input, step).unwrap(), whole, "step {step}");
    }
}

#[test]
fn huge_multibulk_count_costs_nothing_until_data_arrives() {
    let mut parser = RequestParser::new(512 * 1024 * 1024);
    let r = parser.parse(b"*2000000000\r\n$3\r\nGET\r\n").unwrap();
    assert_eq!(r, Parsed::Incomplete { need: 0 });
    assert!(parser.spans.capacity() < 1024);
}

#[test]
fn bad_lengths_are_protocol_errors() {
    let cases: &[(&[u8], ProtocolError)] = &[
        (b"*abc\r\n", ProtocolError::InvalidMultibulkLength),
        (b"*3000000000\r\n", ProtocolError::InvalidMultibulkLength),
        (b"*1\r\n$-5\r\n", ProtocolError::InvalidBulkLength),
        (b"*1\r\n$x\r\n", ProtocolError::InvalidBulkLength),
        (b"*1\r\n$600000000\r\n", ProtocolError::InvalidBulkLength),
        (b"*1\r\n+PING\r\n", ProtocolError::ExpectedDollar(b'+')),
        (b"*1\r\n$4\r\nPINGxx", ProtocolError::InvalidBulkLength),
        (b"SET \"k v\r\n", ProtocolError::UnbalancedQuotes),
        (b"*1\r", ProtocolError::InvalidMultibulkLength),
    ];
    for (input, want) in cases {
        let mut parser = RequestParser::new(512 * 1024 * 1024);
        let mut buf = input.to_vec();
        if input == b"*1\r" {
            buf.extend_from_slice(b"x");
        }
        assert_eq!(
            parser.parse(&buf).as_ref(),
            Err(want),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn long_header_without_crlf_is_refused() {
    let mut parser = RequestParser::new(512 * 1024 * 1024);
    let mut buf = b"*".to_vec();
    buf.extend(std::iter::repeat_n(b'1', MAX_HEADER_LINE + 2));
    assert_eq!(parser.parse(&buf), Err(ProtocolError::TooBigMultibulkCount));
    let mut inline = vec![b'a'; MAX_INLINE + 1];
    inline.push(b'a');
    assert_eq!(parser.parse(&inline), Err(ProtocolError::TooBigInline));
}

#[test]
fn inline_follows_redis_splitting() {
    let ok: &[(&[u8], &[&[u8]])] = &[
        (b"set k v", &[b"set", b"k", b"v"]),
        (b"  set   k  ", &[b"set", b"k"]),
        (b"set \"a b\" 'c d'", &[b"set", b"a b", b"c d"]),
        (b"echo \"\\x41\\n\"", &[b"echo", b"A\n"]),
        (b"echo 'it\\'s'", &[b"echo", b"it's"]),
        (b"echo \"\"", &[b"echo", b""]),
        (b"", &[]),
    ];
    for (line, want) in ok {
        let got = split_inline(line).unwrap();
        let want: Vec<Vec<u8>> = want.iter().map(|w| w.to_vec()).collect();
        assert_eq!(got, want);
    }
    for bad in [
        &b"echo \"abc"[..],
        b"echo 'abc",
        b"echo \"a\"b",
        b"echo 'a'b",
    ] {
        assert_eq!(split_inline(bad), Err(ProtocolError::UnbalancedQuotes));
    }
}

#[test]
fn integers_parse_like_redis() {
    assert_eq!(parse_i64(b"0"), Some(0));
    assert_eq!(parse_i64(b"-12"), Some(-12));
    assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
    assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
    for bad in [
        &b""[..],
        b"-",
        b"01",
        b"+1",
        b" 1",
        b"1 ",
        b"9223372036854775808",
        b"1a",
    ] {
        assert_eq!(parse_i64(bad), None, "{:?}", bad);
    }
}

fn scan_all(input: &[u8], step: usize) -> Vec<usize> {
    let mut sc = ReplyScanner::new();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for chunk in input.chunks(step) {
        buf.extend_from_slice(chunk);
        while let Some(n) = sc.scan(&buf).unwrap() {
            out.push(n);
            buf.drain(..n);
        }
    }
    assert!(buf.is_empty());
    out
}

#[test]
fn replies_are_framed_at_every_split() {
    let input: &[u8] = b"+OK\r\n-ERR x\r\n:1\r\n$3\r\nabc\r\n$-1\r\n*-1\r\n*0\r\n*2\r\n$1\r\na\r\n*1\r\n:2\r\n%1\r\n+k\r\n~2\r\n,1.5\r\n#t\r\n_\r\n>3\r\n+message\r\n+c\r\n=7\r\ntxt:abc\r\n|1\r\n+ttl\r\n:3\r\n$2\r\nhi\r\n!3\r\nerr\r\n(123\r\n";
    let whole = scan_all(input, input.len());
    assert_eq!(whole, vec![5, 8, 4, 9, 5, 5, 4, 19, 22, 3, 31, 22, 9, 6]);
    for step in 1..input.len() {
        assert_eq!(scan_all(input, step), whole, "step {step}");
    }
}

#[test]
fn bad_replies_are_errors_not_panics() {
    for bad in [
        &b"?\r\n"[..],
        b"$-2\r\n",
        b"*-2\r\n",
        b"$3\r\nabcd\r\n",
        b"+a\rb",
    ] {
        let mut sc = ReplyScanner::new();
        assert!(sc.scan(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn values_decode() {
    let frame = bytes::Bytes::from_static(b"*3\r\n$9\r\n127.0.0.1\r\n:6379\r\n%1\r\n+a\r\n_\r\n");
    let v = Value::parse(&frame).unwrap();
    let Value::Array(items) = v else { panic!() };
    assert_eq!(items[0].as_text().unwrap(), "127.0.0.1");
    assert_eq!(items[1].as_integer(), Some(6379));
    assert_eq!(
        items[2],
        Value::Map(vec![(Value::Simple("a".into()), Value::Null)])
    );
}

#[test]
fn random_bytes_never_panic_the_parsers() {
    let mut seed: u64 = 0x9E3779B97F4A7C15;
    let alphabet = b"*$:+-\r\n0123456789-abc %|>~_#,(!=\"'\\x ";
    for _ in 0..20_000 {
        let mut buf = Vec::new();
        let n = (seed % 40) as usize;
        for _ in 0..n {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            buf.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        let mut p = RequestParser::new(1024);
        let _ = p.parse(&buf);
        let mut sc = ReplyScanner::new();
        let _ = sc.scan(&buf);
        let _ = Value::parse(&bytes::Bytes::from(buf));
    }
}
