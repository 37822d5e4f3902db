//! What the people on call read about a data-corruption recovery: what
//! happened, what was done, where things stand and what to do next.

use serde_json::Value;

use crate::notify::Event;

fn text<'a>(details: &'a Value, pointer: &str) -> Option<&'a str> {
    details.pointer(pointer).and_then(Value::as_str)
}

/// Subject and body, from the execution's data (whatever part of it exists).
pub fn message(event: Event, details: &Value) -> (String, String) {
    let database = text(details, "/plan/database")
        .or_else(|| text(details, "/request/database"))
        .unwrap_or("the database");
    let primary = text(details, "/plan/primary").unwrap_or("the primary");
    let restored = text(details, "/plan/restored_instance").unwrap_or("the restored instance");
    let error = text(details, "/error/Error").unwrap_or("an error");
    let cause = text(details, "/error/Cause").unwrap_or("");
    let mut done = Vec::new();
    if let Some(m) = text(details, "/steps/stop_writes/result/mutation") {
        done.push(m.to_owned());
    }
    if let Some(at) = text(details, "/moment/at") {
        done.push(format!(
            "chose {at} as the moment to restore ({})",
            text(details, "/moment/source").unwrap_or("?")
        ));
    }
    if details.pointer("/steps/restore/result").is_some() {
        done.push(format!("restored {restored}"));
    }
    for (pointer, what) in [
        ("/steps/fence/result/mutation", ""),
        ("/steps/dns/result/mutation", ""),
        ("/steps/grants/result/mutation", ""),
        ("/steps/topology/result/mutation", ""),
        ("/steps/writes_back/result/mutation", ""),
    ] {
        if let Some(m) = text(details, pointer) {
            done.push(format!("{m}{what}"));
        }
    }
    if let Some(lost) = details
        .pointer("/steps/loss/result/rows_lost")
        .and_then(Value::as_u64)
    {
        done.push(format!(
            "measured the loss: {lost} row(s) newer than the moment; keys at {}",
            text(details, "/steps/loss/result/keys_location").unwrap_or("?")
        ));
    }
    let writes_still_stopped = details.pointer("/steps/stop_writes/result").is_some()
        && details
            .pointer("/steps/writes_back/result/mutation")
            .is_none()
        && details.pointer("/steps/grants/result").is_none();
    let done_text = if done.is_empty() {
        "- nothing was changed\n".to_owned()
    } else {
        done.iter().map(|d| format!("- {d}\n")).collect()
    };
    let (subject, next) = match event {
        Event::Succeeded => (
            format!("[MueJam DR] Data corruption of {database}: switched to {restored}"),
            format!(
                "Check the lost rows (the CSV above) and replay what matters by hand; {primary} is fenced and kept for forensics; retired replicas of it can be deleted once examined."
            ),
        ),
        Event::FalseAlarm => (
            format!("[MueJam DR] Data corruption of {database}: nothing found"),
            "The integrity verifier and the named checks found no damage on the primary: nothing was changed. If you know of damage no check sees, rerun with a named check that finds it, or with restore_time.".to_owned(),
        ),
        Event::Rejected | Event::NotApproved => (
            format!(
                "[MueJam DR] Data corruption of {database}: not switched ({})",
                if event == Event::Rejected { "rejected" } else { "no answer" }
            ),
            format!(
                "{primary} is still the primary. {restored}, if restored, is kept for inspection: delete it when done."
            ),
        ),
        Event::AlreadyRunning => (
            format!("[MueJam DR] Data corruption of {database}: a recovery is already running"),
            "Nothing was done by this run: follow the running one (drctl local status / the Step Functions console).".to_owned(),
        ),
        Event::InputRejected => (
            format!("[MueJam DR] Data corruption of {database}: input refused ({error})"),
            format!("Nothing was changed. Fix the input: {cause}"),
        ),
        _ => (
            format!("[MueJam DR] Data corruption recovery of {database} FAILED: {error}"),
            format!(
                "{cause}\n\nNothing was switched unless listed above. Find the cause in the report, then rerun (with restore_time if you know the moment)."
            ),
        ),
    };
    let fenced = details.pointer("/steps/fence/result").is_some();
    let half_switched = if fenced && event != Event::Succeeded {
        format!(
            "\nTHE SWITCH WAS BEGUN AND NOT FINISHED: {primary} is fenced (it takes no application connection). {restored} passed the integrity verifier: point {} at it, grant the application role there what the journal recorded as revoked, and record it as the primary (or rerun once the cause is fixed).\n",
            text(details, "/plan/dns/record_name").unwrap_or("the database record")
        )
    } else {
        String::new()
    };
    let warning = if writes_still_stopped && !fenced && event != Event::Succeeded {
        format!(
            "\nTHE APPLICATION'S WRITES ARE STILL STOPPED on {primary} (keep_writes_stopped_on_abort, or giving them back failed): grant them back by hand when it is safe.\n"
        )
    } else {
        String::new()
    };
    let body =
        format!("What was done:\n{done_text}{half_switched}{warning}\nWhat to do next: {next}\n");
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_failure_says_what_was_done_and_whether_writes_are_still_stopped() {
        let details = json!({
            "plan": {"database": "muejam", "primary": "muejam-db-prod", "restored_instance": "muejam-db-prod-r1"},
            "steps": {"stop_writes": {"result": {"mutation": "stopped the writes of muejam_app"}}},
            "error": {"Error": "NotFound", "Cause": "no clean moment in the searched window"}
        });
        let (subject, body) = message(Event::Failed, &details);
        assert_eq!(
            subject,
            "[MueJam DR] Data corruption recovery of muejam FAILED: NotFound"
        );
        assert!(
            body.contains("- stopped the writes of muejam_app"),
            "{body}"
        );
        assert!(body.contains("STILL STOPPED on muejam-db-prod"), "{body}");
        assert!(body.contains("no clean moment"), "{body}");

        let mut given_back = details.clone();
        given_back["steps"]["writes_back"] =
            json!({"result": {"mutation": "gave muejam_app its writes back on muejam-db-prod"}});
        let (_, body) = message(Event::Failed, &given_back);
        assert!(!body.contains("STILL STOPPED"), "{body}");
        assert!(body.contains("- gave muejam_app its writes back"), "{body}");

        let (subject, body) = message(Event::FalseAlarm, &json!({"plan": {"database": "muejam"}}));
        assert!(subject.contains("nothing found"));
        assert!(body.contains("- nothing was changed"), "{body}");
    }
}
