//! Generators of realistic-looking synthetic values: names, e-mails, phone
//! numbers, business names, amounts, card numbers, IBANs, SSN-shaped ids,
//! GPS traces and receipt OCR text. All draw from the caller's RNG, so the
//! output is a pure function of the seed.

use std::fmt::Write;

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

use super::names::{self, City};

pub type R = ChaCha8Rng;

/// Picks one element of a non-empty constant list.
pub fn pick<'a, T>(rng: &mut R, items: &'a [T]) -> &'a T {
    // The lists are constants and never empty; index 0 is a safe fallback.
    items.choose(rng).unwrap_or(&items[0])
}

/// Picks one string of a non-empty constant list.
pub fn pick_str(rng: &mut R, items: &[&'static str]) -> &'static str {
    items.choose(rng).copied().unwrap_or("")
}

/// A version-4-shaped UUID built from RNG bytes.
pub fn uuid(rng: &mut R) -> Uuid {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A standard normal sample (Box-Muller).
pub fn normal(rng: &mut R) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A log-normal amount in cents with the given median, clamped to
/// `[min, max]`: most amounts are small, a few are large.
pub fn amount_cents(rng: &mut R, median: f64, sigma: f64, min: i64, max: i64) -> i64 {
    let v = median * (sigma * normal(rng)).exp();
    (v.round() as i64).clamp(min, max)
}

pub struct Person {
    pub first: &'static str,
    pub last: &'static str,
}

impl Person {
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first, self.last)
    }
}

pub fn person(rng: &mut R) -> Person {
    Person {
        first: pick_str(rng, names::FIRST_NAMES),
        last: pick_str(rng, names::LAST_NAMES),
    }
}

/// Lower-case ASCII for an e-mail local part or domain: accents folded,
/// everything else but letters and digits dropped.
pub fn ascii_fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let folded: &str = match c {
            'a'..='z' | '0'..='9' => {
                out.push(c);
                continue;
            }
            'A'..='Z' => {
                out.push(c.to_ascii_lowercase());
                continue;
            }
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' | 'ā' | 'Á' | 'Å' | 'Ä' => "a",
            'ç' | 'Ç' | 'č' => "c",
            'é' | 'è' | 'ê' | 'ë' | 'É' => "e",
            'í' | 'ì' | 'î' | 'ï' | 'Í' | 'ı' => "i",
            'ñ' | 'Ñ' => "n",
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' | 'Ó' | 'Ö' | 'Ø' | 'Ō' => "o",
            'ú' | 'ù' | 'û' | 'ü' | 'Ü' => "u",
            'ł' | 'Ł' => "l",
            'ś' | 'ş' | 'Ş' | 'š' => "s",
            'ź' | 'ż' | 'ž' => "z",
            'ğ' => "g",
            'ß' => "ss",
            'ő' => "o",
            'ř' => "r",
            _ => "",
        };
        out.push_str(folded);
    }
    out
}

/// An e-mail derived from a person's name at one of the common domains, or at
/// `company_domain` when given.
pub fn email(rng: &mut R, p: &Person, company_domain: Option<&str>) -> String {
    let first = ascii_fold(p.first);
    let last = ascii_fold(p.last);
    let first = if first.is_empty() {
        "user".into()
    } else {
        first
    };
    let last = if last.is_empty() { "x".into() } else { last };
    let local = match rng.gen_range(0..6) {
        0 => format!("{first}.{last}"),
        1 => format!("{}{last}", &first[..1]),
        2 => format!("{first}{}", rng.gen_range(1..100)),
        3 => format!("{first}_{last}{}", rng.gen_range(1..1000)),
        4 => format!("{last}.{first}"),
        _ => format!("{first}.{last}{}", rng.gen_range(10..100)),
    };
    let domain = match company_domain {
        Some(d) => d,
        None => pick(rng, names::EMAIL_DOMAINS),
    };
    format!("{local}@{domain}")
}

/// The company web domain of a business name: "Blue Fern Bakery LLC" →
/// "bluefernbakery.com".
pub fn company_domain(business: &str, country: &str) -> String {
    let words: Vec<&str> = business
        .split_whitespace()
        .filter(|w| {
            !matches!(
                *w,
                "LLC"
                    | "Inc."
                    | "Co."
                    | "Corp."
                    | "Ltd"
                    | "Ltd."
                    | "LLP"
                    | "&"
                    | "Pty"
                    | "GmbH"
                    | "UG"
                    | "KG"
                    | "SARL"
                    | "SAS"
                    | "EURL"
                    | "B.V."
                    | "S.L."
                    | "S.A."
            )
        })
        .collect();
    let base = ascii_fold(&words.concat());
    let tld = match country {
        "US" => "com",
        "GB" => "co.uk",
        "AU" => "com.au",
        "NZ" => "co.nz",
        "CA" => "ca",
        "DE" => "de",
        "FR" => "fr",
        "NL" => "nl",
        "IE" => "ie",
        "ES" => "es",
        "AT" => "at",
        _ => "com",
    };
    format!("{base}.{tld}")
}

/// A phone number as a person would type it, in the shape of the country.
/// US/CA numbers use the 555 exchange; GB numbers Ofcom's drama ranges.
pub fn phone(rng: &mut R, city: &City) -> String {
    let area = pick(rng, city.area_codes);
    match city.country {
        "US" | "CA" => {
            let line = rng.gen_range(0..10_000);
            match rng.gen_range(0..4) {
                0 => format!("+1 {area}-555-{line:04}"),
                1 => format!("({area}) 555-{line:04}"),
                2 => format!("{area}.555.{line:04}"),
                _ => format!("+1{area}555{line:04}"),
            }
        }
        "GB" => {
            if rng.gen_bool(0.4) {
                let n = rng.gen_range(0..1000);
                if rng.gen_bool(0.5) {
                    format!("07700 900{n:03}")
                } else {
                    format!("+44 7700 900{n:03}")
                }
            } else {
                let n = rng.gen_range(0..1000);
                match *area {
                    "20" => format!("+44 20 7946 0{n:03}"),
                    a => format!("+44 {a} 496 0{n:03}"),
                }
            }
        }
        "AU" => format!("+61 {area} 5550 {:04}", rng.gen_range(0..10_000)),
        "NZ" => format!("+64 {area} 555 {:04}", rng.gen_range(0..10_000)),
        "DE" => format!("+49 {area} {}", rng.gen_range(1_000_000..99_999_999)),
        "AT" => format!("+43 {area} {}", rng.gen_range(100_000..9_999_999)),
        "FR" => format!(
            "+33 {area} {:02} {:02} {:02} {:02}",
            rng.gen_range(0..100),
            rng.gen_range(0..100),
            rng.gen_range(0..100),
            rng.gen_range(0..100)
        ),
        "NL" => format!(
            "+31 {area} {:03} {:04}",
            rng.gen_range(0..1000),
            rng.gen_range(0..10_000)
        ),
        "IE" => format!(
            "+353 {area} {:03} {:04}",
            rng.gen_range(0..1000),
            rng.gen_range(0..10_000)
        ),
        "ES" => format!(
            "+34 {area} {:03} {:02} {:02}",
            rng.gen_range(0..1000),
            rng.gen_range(0..100),
            rng.gen_range(0..100)
        ),
        _ => format!("+1 {area}-555-{:04}", rng.gen_range(0..10_000)),
    }
}

/// A business name such as "Harbor Plumbing LLC" or "Blue Fern Bakery".
pub fn business_name(rng: &mut R, country: &str) -> String {
    let trade = pick(rng, names::TRADES);
    let suffix = *pick(rng, names::suffixes(country));
    let mut name = match rng.gen_range(0..10) {
        0..=3 => format!("{} {trade}", pick(rng, names::NAME_WORDS)),
        4..=5 => format!(
            "{} {} {trade}",
            pick(rng, names::NAME_WORDS),
            pick(rng, names::NAME_NOUNS)
        ),
        6..=7 => format!("{} {trade}", pick(rng, names::LAST_NAMES)),
        8 => format!("{} & Sons {trade}", pick(rng, names::LAST_NAMES)),
        _ => format!(
            "{} & {} {trade}",
            pick(rng, names::LAST_NAMES),
            pick(rng, names::LAST_NAMES)
        ),
    };
    if !suffix.is_empty() {
        name.push(' ');
        name.push_str(suffix);
    }
    name
}

/// Appends the Luhn check digit to `digits` (ASCII digits).
pub fn luhn_complete(digits: &mut String) {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    digits.push(char::from(b'0' + ((10 - sum % 10) % 10) as u8));
}

pub use crate::core::detect::{iban_mod97, luhn_valid};

/// A Luhn-valid 16-digit card number with its brand, grouped as typed:
/// `4111 1111 1111 1111`, `4111-1111-1111-1111` or `4111111111111111`.
pub fn card_number(rng: &mut R) -> (&'static str, String) {
    let (brand, prefix) = match rng.gen_range(0..3) {
        0 => ("MASTERCARD", format!("5{}", rng.gen_range(1..6))),
        1 => ("DISCOVER", "6011".to_string()),
        _ => ("VISA", "4".to_string()),
    };
    let mut digits = prefix;
    while digits.len() < 15 {
        digits.push(char::from(b'0' + rng.gen_range(0..10u8)));
    }
    luhn_complete(&mut digits);
    let sep = match rng.gen_range(0..3) {
        0 => "-",
        1 => "",
        _ => " ",
    };
    let grouped = digits
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(sep);
    (brand, grouped)
}

/// A mod-97-valid IBAN, printed in groups of four (e.g. `DE89 3704 0044 0532
/// 0130 00`).
pub fn iban(rng: &mut R) -> String {
    let (country, bban) = match rng.gen_range(0..4) {
        0 => ("GB", {
            let bank = ["NWBK", "BARC", "LOYD", "MIDL"][rng.gen_range(0..4)];
            format!("{bank}{}", digits(rng, 14))
        }),
        1 => ("FR", digits(rng, 23)),
        2 => ("NL", {
            let bank = ["ABNA", "INGB", "RABO"][rng.gen_range(0..3)];
            format!("{bank}{}", digits(rng, 10))
        }),
        _ => ("DE", digits(rng, 18)),
    };
    let check = 98 - iban_mod97(&format!("{country}00{bban}"));
    let compact = format!("{country}{check:02}{bban}");
    compact
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn digits(rng: &mut R, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// An SSN-shaped tax id in the 900–999 area, which the US never issues as an
/// SSN (it is the ITIN range): never a real person's number.
pub fn tax_id(rng: &mut R) -> String {
    format!(
        "{}-{:02}-{:04}",
        rng.gen_range(900..1000),
        rng.gen_range(1..100),
        rng.gen_range(1..10_000)
    )
}

/// A street address in the shape of the city's country.
pub fn address(rng: &mut R, city: &City) -> String {
    let street = pick(rng, names::STREETS);
    let n = rng.gen_range(1..2500);
    match city.country {
        "US" => format!(
            "{n} {street} St, {}, {} {:05}",
            city.name,
            city.region,
            rng.gen_range(10_000..99_999)
        ),
        "CA" => format!(
            "{n} {street} Ave, {}, {} {}{}{} {}{}{}",
            city.name,
            city.region,
            char::from(b'A' + rng.gen_range(0..26u8)),
            rng.gen_range(0..10),
            char::from(b'A' + rng.gen_range(0..26u8)),
            rng.gen_range(0..10),
            char::from(b'A' + rng.gen_range(0..26u8)),
            rng.gen_range(0..10)
        ),
        "GB" | "IE" => format!(
            "{} {street} Road, {}, {}{} {}{}{}",
            n % 300 + 1,
            city.name,
            ["SW", "N", "EC", "M", "BS", "EH", "D"][rng.gen_range(0..7)],
            rng.gen_range(1..20),
            rng.gen_range(1..10),
            char::from(b'A' + rng.gen_range(0..26u8)),
            char::from(b'A' + rng.gen_range(0..26u8))
        ),
        "AU" | "NZ" => format!(
            "{n} {street} Street, {} {} {}",
            city.name,
            city.region,
            rng.gen_range(1000..9999)
        ),
        "DE" | "AT" => format!(
            "{street}straße {}, {:05} {}",
            n % 200 + 1,
            rng.gen_range(10_000..99_999),
            city.name
        ),
        "FR" => format!(
            "{} rue {street}, {:05} {}",
            n % 200 + 1,
            rng.gen_range(10_000..99_999),
            city.name
        ),
        _ => format!("{street} {}, {}", n % 200 + 1, city.name),
    }
}

/// One point of a GPS trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpsPoint {
    /// Seconds since the start of the trip.
    pub t: i64,
    pub lat: f64,
    pub lon: f64,
}

const M_PER_DEG_LAT: f64 = 111_320.0;

/// A drive along a street grid near `city`: it starts within a few km of the
/// centre, runs in straight segments between intersections (blocks of about
/// 100–250 m), sometimes turning 90° at one, at 6–17 m/s, with a point every
/// ~10 s and a few metres of GPS noise. Returns the points and the distance
/// driven in metres.
pub fn gps_trace(rng: &mut R, city: &City, points: usize) -> (Vec<GpsPoint>, f64) {
    let cos_lat = city.lat.to_radians().cos().max(0.1);
    let grid = city.grid.to_radians();
    // Position in metres east/north of the centre, on the rotated grid.
    let block = rng.gen_range(90.0..250.0);
    let mut gx = (rng.gen_range(-25..25) as f64) * block;
    let mut gy = (rng.gen_range(-25..25) as f64) * block;
    let mut dir: u8 = rng.gen_range(0..4);
    let mut to_intersection = block;
    let mut speed: f64 = rng.gen_range(7.0..14.0);
    let mut t: i64 = 0;
    let mut distance = 0.0;
    let mut out = Vec::with_capacity(points);
    for i in 0..points {
        if i > 0 {
            let dt = 10 + rng.gen_range(-1..=1);
            t += dt;
            speed = (speed + normal(rng) * 1.5).clamp(2.0, 17.0);
            let mut left = speed * dt as f64;
            distance += left;
            while left > 0.0 {
                let step = left.min(to_intersection);
                let (dx, dy) = match dir {
                    0 => (step, 0.0),
                    1 => (0.0, step),
                    2 => (-step, 0.0),
                    _ => (0.0, -step),
                };
                gx += dx;
                gy += dy;
                left -= step;
                to_intersection -= step;
                if to_intersection <= 0.0 {
                    to_intersection = block;
                    match rng.gen_range(0..10) {
                        0..=1 => dir = (dir + 1) % 4,
                        2..=3 => dir = (dir + 3) % 4,
                        _ => {}
                    }
                }
            }
        }
        let (e, n) = (
            gx * grid.cos() - gy * grid.sin(),
            gx * grid.sin() + gy * grid.cos(),
        );
        let noise_e = normal(rng) * 3.0;
        let noise_n = normal(rng) * 3.0;
        out.push(GpsPoint {
            t,
            lat: city.lat + (n + noise_n) / M_PER_DEG_LAT,
            lon: city.lon + (e + noise_e) / (M_PER_DEG_LAT * cos_lat),
        });
    }
    (out, distance)
}

/// Great-circle distance in metres (haversine).
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6_371_000.0 * a.sqrt().asin()
}

/// What a receipt's OCR text shows, and where its secrets are (for tests).
pub struct Receipt {
    pub ocr: String,
    pub total_cents: i64,
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// OCR text of a till receipt: merchant, address, date, item lines, subtotal,
/// tax and total, then how it was paid. Sometimes (per the flags) a full card
/// number or the cashier's name is printed; now and then OCR garbles a line.
pub fn receipt_ocr(
    rng: &mut R,
    merchant: &str,
    city: &City,
    date: (i64, u32, u32),
    full_card: bool,
    cashier: Option<&str>,
) -> Receipt {
    let mut s = String::with_capacity(400);
    let _ = writeln!(s, "{}", merchant.to_uppercase());
    let _ = writeln!(s, "{}", address(rng, city).to_uppercase());
    let (y, m, d) = date;
    let _ = writeln!(
        s,
        "{m:02}/{d:02}/{y} {:02}:{:02}",
        rng.gen_range(7..22),
        rng.gen_range(0..60)
    );
    if let Some(name) = cashier {
        let _ = writeln!(s, "Served by: {name}");
    }
    s.push_str("------------------------------\n");
    let mut subtotal = 0i64;
    for _ in 0..rng.gen_range(1..6) {
        let (item, price) = *pick(rng, names::RECEIPT_ITEMS);
        let qty = if rng.gen_bool(0.2) {
            rng.gen_range(2..5)
        } else {
            1
        };
        let line = i64::from(price) * qty * rng.gen_range(80..130) / 100;
        subtotal += line;
        let label = if qty > 1 {
            format!("{qty} x {item}")
        } else {
            item.to_string()
        };
        let label = if rng.gen_bool(0.05) {
            // OCR noise: letters read as lookalikes.
            label.replace('O', "0").replace('I', "l").replace('S', "5")
        } else {
            label
        };
        let _ = writeln!(s, "{label:<22}{:>8}", money(line));
    }
    let tax = subtotal * rng.gen_range(0..21) / 100;
    let total = subtotal + tax;
    let _ = writeln!(s, "{:<22}{:>8}", "SUBTOTAL", money(subtotal));
    let _ = writeln!(s, "{:<22}{:>8}", "TAX", money(tax));
    let _ = writeln!(s, "{:<22}{:>8}", "TOTAL", money(total));
    if full_card {
        let (brand, number) = card_number(rng);
        let _ = writeln!(s, "{brand} {number}");
    } else if rng.gen_bool(0.75) {
        let brand = ["VISA", "MASTERCARD", "AMEX", "DEBIT"][rng.gen_range(0..4)];
        let _ = writeln!(s, "{brand} **** **** **** {:04}", rng.gen_range(0..10_000));
    } else {
        s.push_str("CASH\n");
    }
    let _ = write!(s, "AUTH {:06}  THANK YOU!", rng.gen_range(0..1_000_000));
    Receipt {
        ocr: s,
        total_cents: total,
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn rng() -> R {
        ChaCha8Rng::seed_from_u64(42)
    }

    fn city(country: &str) -> &'static City {
        names::CITIES.iter().find(|c| c.country == country).unwrap()
    }

    #[test]
    fn luhn_known_numbers() {
        assert!(luhn_valid("4111 1111 1111 1111"));
        assert!(luhn_valid("5555-5555-5555-4444"));
        assert!(!luhn_valid("4111 1111 1111 1112"));
        let mut d = "411111111111111".to_string();
        luhn_complete(&mut d);
        assert_eq!(d, "4111111111111111");
    }

    #[test]
    fn card_numbers_are_luhn_valid_16_digits() {
        let mut r = rng();
        for _ in 0..500 {
            let (_, n) = card_number(&mut r);
            let digits: String = n.chars().filter(char::is_ascii_digit).collect();
            assert_eq!(digits.len(), 16, "{n}");
            assert!(luhn_valid(&n), "{n}");
        }
    }

    #[test]
    fn ibans_pass_mod97() {
        assert_eq!(iban_mod97("DE89 3704 0044 0532 0130 00"), 1);
        assert_eq!(iban_mod97("GB82 WEST 1234 5698 7654 32"), 1);
        assert_ne!(iban_mod97("DE88 3704 0044 0532 0130 00"), 1);
        let mut r = rng();
        for _ in 0..500 {
            let i = iban(&mut r);
            assert_eq!(iban_mod97(&i), 1, "{i}");
        }
    }

    #[test]
    fn tax_ids_are_in_the_never_issued_area() {
        let mut r = rng();
        for _ in 0..500 {
            let t = tax_id(&mut r);
            let parts: Vec<&str> = t.split('-').collect();
            assert_eq!(parts.len(), 3);
            let area: u32 = parts[0].parse().unwrap();
            assert!((900..1000).contains(&area), "{t}");
            assert_eq!((parts[1].len(), parts[2].len()), (2, 4));
        }
    }

    #[test]
    fn emails_and_domains_are_ascii() {
        let mut r = rng();
        for _ in 0..500 {
            let p = person(&mut r);
            let e = email(&mut r, &p, None);
            let (local, domain) = e.split_once('@').unwrap();
            assert!(!local.is_empty() && domain.contains('.'), "{e}");
            assert!(
                e.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@._".contains(c)),
                "{e}"
            );
        }
        assert_eq!(ascii_fold("Łukasz"), "lukasz");
        assert_eq!(ascii_fold("Zoë"), "zoe");
        assert_eq!(ascii_fold("O'Brien"), "obrien");
        assert_eq!(
            company_domain("Blue Fern Bakery LLC", "US"),
            "bluefernbakery.com"
        );
        assert_eq!(
            company_domain("Müller & Sons Café GmbH", "DE"),
            "mullersonscafe.de"
        );
    }

    #[test]
    fn phones_look_typed() {
        let mut r = rng();
        for c in names::CITIES {
            for _ in 0..20 {
                let p = phone(&mut r, c);
                let digits = p.chars().filter(char::is_ascii_digit).count();
                assert!((9..=13).contains(&digits), "{p}");
                assert!(
                    p.chars()
                        .all(|ch| ch.is_ascii_digit() || " +-().".contains(ch)),
                    "{p}"
                );
            }
        }
        let p = phone(&mut r, city("US"));
        assert!(p.contains("555"), "{p}");
    }

    #[test]
    fn business_names_vary() {
        let mut r = rng();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20_000 {
            seen.insert(business_name(&mut r, "US"));
        }
        assert!(seen.len() > 17_000, "only {} distinct", seen.len());
    }

    #[test]
    fn amounts_are_mostly_small() {
        let mut r = rng();
        let v: Vec<i64> = (0..10_000)
            .map(|_| amount_cents(&mut r, 2_500.0, 1.2, 50, 5_000_000))
            .collect();
        let small = v.iter().filter(|&&a| a < 10_000).count();
        let large = v.iter().filter(|&&a| a > 50_000).count();
        assert!(small > 8_000, "{small}");
        assert!(large > 0 && large < 500, "{large}");
    }

    #[test]
    fn gps_trace_moves_like_a_car_near_the_city() {
        let mut r = rng();
        let c = city("GB");
        let (pts, dist) = gps_trace(&mut r, c, 120);
        assert_eq!(pts.len(), 120);
        for w in pts.windows(2) {
            let dt = w[1].t - w[0].t;
            assert!((9..=11).contains(&dt));
            let d = haversine_m(w[0].lat, w[0].lon, w[1].lat, w[1].lon);
            // ≤ 17 m/s plus GPS noise.
            assert!(d < 17.0 * 11.0 + 30.0, "{d} m in {dt} s");
        }
        let from_centre = haversine_m(c.lat, c.lon, pts[0].lat, pts[0].lon);
        assert!(from_centre < 10_000.0, "{from_centre}");
        assert!(dist > 120.0 * 10.0 * 2.0, "{dist}");
    }

    #[test]
    fn receipts_look_like_receipts() {
        let mut r = rng();
        let c = city("US");
        let rec = receipt_ocr(&mut r, "Shell", c, (2024, 3, 5), true, Some("José García"));
        assert!(rec.ocr.starts_with("SHELL\n"));
        assert!(rec.ocr.contains("TOTAL"));
        assert!(rec.ocr.contains("José García"));
        assert!(rec.ocr.contains("03/05/2024"));
        let card_line = rec
            .ocr
            .lines()
            .find(|l| {
                l.starts_with("VISA") || l.starts_with("MASTERCARD") || l.starts_with("DISCOVER")
            })
            .unwrap();
        assert!(luhn_valid(card_line), "{card_line}");
        assert!(rec.total_cents > 0);
    }
}
