//! The suspicious addresses of a breach: parsed and normalised once, then
//! merged into the WAF IP set without ever dropping what it holds.
//!
//! WAF takes CIDR blocks only (`192.0.2.44/32`, `2001:db8::/32`), all
//! prefixes but `/0`, at most 10,000 addresses per IP set; moto checks
//! none of that (`AWS-FIDELITY.md`), so it is checked here, before the
//! first mutation.

use std::collections::BTreeSet;
use std::net::IpAddr;

use dr_core::{DrError, DrResult};
use ipnet::IpNet;

/// WAF's limit of addresses (CIDR entries) in one IP set.
pub const WAF_IP_SET_LIMIT: usize = 10_000;

/// The broadest block we write without a person: a wider one would block a
/// large share of legitimate users (a /8 is 16 million addresses).
pub const MIN_PREFIX_V4: u8 = 16;
pub const MIN_PREFIX_V6: u8 = 32;

/// One address or block as the input gives it: `203.0.113.7`,
/// `203.0.113.0/24`, `2001:DB8::1`, `2001:db8::/48`. Host bits of a block are
/// cleared (`203.0.113.7/24` is `203.0.113.0/24`); an IPv4-mapped IPv6
/// address is the IPv4 address it maps.
pub fn normalise(text: &str) -> DrResult<IpNet> {
    let trimmed = text.trim();
    let invalid = |why: &str| DrError::InvalidInput(format!("address {text:?}: {why}"));
    if trimmed.is_empty() {
        return Err(invalid("empty"));
    }
    let net = match trimmed.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match trimmed.parse::<IpAddr>() {
            Ok(addr) => IpNet::from(addr),
            Err(_) => return Err(invalid("not an IPv4 or IPv6 address or CIDR block")),
        },
    };
    let net = match net {
        IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
            Some(v4) if v6.prefix_len() >= 96 => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96)
                .map_err(|_| invalid("bad IPv4-mapped prefix"))?,
            _ => IpNet::V6(v6),
        },
        v4 => v4,
    };
    let (min, family) = match net {
        IpNet::V4(_) => (MIN_PREFIX_V4, "IPv4"),
        IpNet::V6(_) => (MIN_PREFIX_V6, "IPv6"),
    };
    if net.prefix_len() < min {
        return Err(invalid(&format!(
            "/{} is broader than /{min} ({family}): it would block a large share of legitimate users; block it by hand if that is meant",
            net.prefix_len()
        )));
    }
    Ok(net.trunc())
}

/// Every address of the input, normalised and deduplicated, in a stable
/// order; the first bad one is named. More than [`WAF_IP_SET_LIMIT`] is
/// refused: no IP set could hold them.
pub fn normalise_all(texts: &[String]) -> DrResult<Vec<IpNet>> {
    if texts.is_empty() {
        return Err(DrError::InvalidInput(
            "no suspicious address given".to_owned(),
        ));
    }
    let set: BTreeSet<IpNet> = texts
        .iter()
        .map(|t| normalise(t))
        .collect::<DrResult<_>>()?;
    if set.len() > WAF_IP_SET_LIMIT {
        return Err(DrError::InvalidInput(format!(
            "{} distinct addresses: a WAF IP set holds at most {WAF_IP_SET_LIMIT}",
            set.len()
        )));
    }
    Ok(set.into_iter().collect())
}

/// The IP set after the merge, and what the merge added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// What the IP set will hold: every entry it held, verbatim and in its
    /// order, then the new blocks.
    pub addresses: Vec<String>,
    /// The blocks written now (in WAF's form).
    pub added: Vec<String>,
    /// The blocks already covered by an entry of the set.
    pub already_blocked: Vec<String>,
}

/// Pure: `new` merged into the set's `existing` entries. Nothing existing is
/// dropped or rewritten (an entry we cannot parse is kept as it is); a block
/// equal to or inside an existing entry is not added again. Past the WAF
/// limit the merge is refused, naming how many fit.
pub fn merge(existing: &[String], new: &[IpNet]) -> DrResult<Merged> {
    let held: Vec<IpNet> = existing
        .iter()
        .filter_map(|e| e.trim().parse::<IpNet>().ok())
        .collect();
    let mut added = Vec::new();
    let mut already_blocked = Vec::new();
    let mut seen: BTreeSet<IpNet> = BTreeSet::new();
    for net in new {
        if !seen.insert(*net) {
            continue;
        }
        if held.iter().any(|h| h.contains(net)) {
            already_blocked.push(net.to_string());
        } else {
            added.push(net.to_string());
        }
    }
    let total = existing.len() + added.len();
    if total > WAF_IP_SET_LIMIT {
        return Err(DrError::InvalidInput(format!(
            "the IP set holds {} entries; adding {} would make {total}, past WAF's limit of {WAF_IP_SET_LIMIT} (room for {}): use a second IP set or broader blocks",
            existing.len(),
            added.len(),
            WAF_IP_SET_LIMIT.saturating_sub(existing.len())
        )));
    }
    let mut addresses = existing.to_vec();
    addresses.extend(added.iter().cloned());
    Ok(Merged {
        addresses,
        added,
        already_blocked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn addresses_are_normalised_to_the_blocks_waf_takes() {
        let table = [
            ("203.0.113.7", "203.0.113.7/32"),
            (" 203.0.113.7 ", "203.0.113.7/32"),
            ("203.0.113.7/32", "203.0.113.7/32"),
            ("203.0.113.7/24", "203.0.113.0/24"),
            ("198.51.0.0/16", "198.51.0.0/16"),
            ("2001:DB8::1", "2001:db8::1/128"),
            ("2001:db8:0:0::1/128", "2001:db8::1/128"),
            ("2001:db8::1/48", "2001:db8::/48"),
            ("::ffff:203.0.113.9", "203.0.113.9/32"),
            ("::ffff:203.0.113.0/120", "203.0.113.0/24"),
        ];
        for (input, want) in table {
            assert_eq!(
                normalise(input).map(|n| n.to_string()).ok().as_deref(),
                Some(want),
                "{input}"
            );
        }
    }

    #[test]
    fn what_waf_would_refuse_or_what_blocks_too_much_is_refused_by_name() {
        let table = [
            ("", "empty"),
            ("   ", "empty"),
            ("203.0.113", "not an IPv4"),
            ("203.0.113.256", "not an IPv4"),
            ("203.0.113.7/33", "not an IPv4"),
            ("evil.example.com", "not an IPv4"),
            ("0.0.0.0/0", "/0 is broader than /16"),
            ("10.0.0.0/8", "/8 is broader than /16"),
            ("::/0", "/0 is broader than /32"),
            ("2001:db8::/16", "/16 is broader than /32"),
        ];
        for (input, says) in table {
            let error = normalise(input).expect_err(input);
            assert_eq!(error.name(), "InvalidInput", "{input}");
            assert!(error.to_string().contains(says), "{input}: {error}");
        }
    }

    #[test]
    fn a_list_is_deduplicated_and_bounded() {
        let list: Vec<String> = [
            "203.0.113.7",
            "203.0.113.7/32",
            "2001:db8::1",
            "203.0.113.8",
        ]
        .map(str::to_owned)
        .to_vec();
        let nets = normalise_all(&list).expect("valid");
        assert_eq!(nets.len(), 3);
        assert_eq!(
            normalise_all(&[]).expect_err("empty").name(),
            "InvalidInput"
        );
        let too_many: Vec<String> = (0..=WAF_IP_SET_LIMIT as u32)
            .map(|i| std::net::Ipv4Addr::from(0xC633_0000 + i).to_string())
            .collect();
        let error = normalise_all(&too_many).expect_err("10,001");
        assert!(error.to_string().contains("at most 10000"), "{error}");
        let bad = ["203.0.113.7".to_owned(), "nope".to_owned()];
        assert!(normalise_all(&bad)
            .expect_err("bad")
            .to_string()
            .contains("\"nope\""));
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| normalise(s).expect("valid")).collect()
    }

    #[test]
    fn the_merge_keeps_every_existing_entry_and_adds_each_new_block_once() {
        let existing: Vec<String> = ["192.0.2.0/24", "198.51.100.9/32", "not-a-cidr"]
            .map(str::to_owned)
            .to_vec();
        // (new, added, already blocked)
        let table: [(&[&str], &[&str], &[&str]); 4] = [
            (&["203.0.113.7"], &["203.0.113.7/32"], &[]),
            (
                &["198.51.100.9", "192.0.2.77"],
                &[],
                &["198.51.100.9/32", "192.0.2.77/32"],
            ),
            (&["203.0.113.7", "203.0.113.7/32"], &["203.0.113.7/32"], &[]),
            (
                &["2001:db8::1", "192.0.2.0/23"],
                &["2001:db8::1/128", "192.0.2.0/23"],
                &[],
            ),
        ];
        for (new, added, already) in table {
            let merged = merge(&existing, &nets(new)).expect("fits");
            assert_eq!(merged.added, added, "{new:?}");
            assert_eq!(merged.already_blocked, already, "{new:?}");
            assert_eq!(
                &merged.addresses[..3],
                &existing[..],
                "existing kept, in order"
            );
            assert_eq!(merged.addresses.len(), 3 + added.len());
        }
    }

    #[test]
    fn a_merge_past_the_limit_is_refused_with_the_room_left() {
        let existing: Vec<String> = (0..WAF_IP_SET_LIMIT as u32 - 1)
            .map(|i| format!("{}/32", std::net::Ipv4Addr::from(0x0A00_0000 + i)))
            .collect();
        assert!(merge(&existing, &nets(&["203.0.113.7"])).is_ok());
        let error = merge(&existing, &nets(&["203.0.113.7", "203.0.113.8"])).expect_err("full");
        assert_eq!(error.name(), "InvalidInput");
        assert!(error.to_string().contains("(room for 1)"), "{error}");
        // Already blocked addresses take no room.
        assert!(merge(&existing, &nets(&["10.0.0.1", "203.0.113.7"])).is_ok());
    }

    proptest! {
        #[test]
        fn merging_never_drops_an_entry_and_is_idempotent(
            existing in proptest::collection::vec(any::<u32>(), 0..40),
            new in proptest::collection::vec(any::<u32>(), 1..40),
        ) {
            let existing: Vec<String> = existing
                .iter()
                .map(|a| format!("{}/32", std::net::Ipv4Addr::from(*a)))
                .collect();
            let new: Vec<IpNet> = new
                .iter()
                .map(|a| IpNet::from(IpAddr::from(std::net::Ipv4Addr::from(*a))))
                .collect();
            let once = merge(&existing, &new).expect("small");
            prop_assert!(existing.iter().all(|e| once.addresses.contains(e)));
            prop_assert!(new.iter().all(|n| once.addresses.iter().any(|a| a.parse::<IpNet>().is_ok_and(|a| a.contains(n)))));
            let twice = merge(&once.addresses, &new).expect("small");
            prop_assert!(twice.added.is_empty());
            prop_assert_eq!(twice.addresses, once.addresses);
        }
    }
}
