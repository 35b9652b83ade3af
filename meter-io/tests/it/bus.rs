//! The bus client against the simulated meter bus.

use meter_io::profile::Role;
use meter_io::{Meter, MeterError, ReadError};

use crate::{SimMeter, profile, start, unit};

fn meter(bus: &meter_io::Bus, id: u8, p: std::sync::Arc<meter_io::Profile>) -> Meter {
    Meter::new(bus.clone(), unit(id), p)
}

#[tokio::test]
async fn every_built_in_profile_reads_back_from_the_simulator_on_one_bus() {
    let names = ["sdm120", "sdm630", "abb-b23", "em24", "sunspec-203"];
    let meters = names
        .iter()
        .enumerate()
        .map(|(i, name)| SimMeter {
            unit: i as u8 + 1,
            profile: profile(name, 1000, 100, 0),
            // Distinct counters per meter, 1000.0, 2000.0, ... kWh: exact in every encoding.
            import_wh: 1_000_000.0 * (i as f64 + 1.0),
            faults: &[],
        })
        .collect::<Vec<_>>();
    let profiles: Vec<_> = meters.iter().map(|m| m.profile.clone()).collect();
    let (bus, _sim, mut served) = start(meters);
    for (i, name) in names.iter().enumerate() {
        let id = i as u8 + 1;
        let m = meter(&bus, id, profiles[i].clone());
        let values = m.read_all().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        // The simulator answers 230 V on L1 and 50 Hz; every profile has both.
        let l1 = values.iter().find(|v| v.role == Role::VoltageL1).unwrap();
        assert!((l1.value.unwrap() - 230.0).abs() < 0.01, "{name}: {l1:?}");
        let hz = values.iter().find(|v| v.role == Role::Frequency).unwrap();
        assert!((hz.value.unwrap() - 50.0).abs() < 0.01, "{name}: {hz:?}");
        // The energy counter started at (i + 1) * 1000 kWh and grows by well under 1 Wh in the
        // milliseconds since (3500 kWh a year is about 0.11 Wh per second), so every
        // encoding's resolution (at best 0.01 Wh, at worst 100 Wh for the EM24) rounds it to
        // the start value or one resolution step above.
        let wh = m.read_energy_wh(&[Role::EnergyImport]).await.unwrap()[0];
        let start = 1_000_000 * (u64::from(id));
        assert!((start..=start + 100).contains(&wh), "{name}: {wh}");
        // The simulator reports what it served, and it is what the client decoded.
        let mut last = None;
        while let Ok(s) = served.try_recv() {
            if s.unit == id {
                last = Some(s.import_wh);
            }
        }
        assert_eq!(last, Some(wh), "{name}");
    }
    let stats = bus.stats();
    for id in 1..=5u8 {
        let s = stats.meters[&id];
        assert_eq!((s.errors, s.retries), (0, 0), "unit {id}: {s:?}");
        assert_eq!(s.requests, s.ok);
    }
}

#[tokio::test]
async fn a_silent_meter_times_out_after_its_retries() {
    let p = profile("sdm120", 60, 20, 2);
    let (bus, _sim, _) = start(vec![SimMeter {
        unit: 1,
        profile: p.clone(),
        import_wh: 1000.0,
        faults: &[],
    }]);
    // Nobody answers unit 9.
    let error = meter(&bus, 9, p.clone()).read_all().await.unwrap_err();
    assert!(
        matches!(error, MeterError::Read(ReadError::Timeout { unit: 9, .. })),
        "{error}"
    );
    assert!(
        error.to_string().contains("no answer within 60 ms"),
        "{error}"
    );
    let s = bus.stats().meters[&9];
    assert_eq!((s.requests, s.timeouts, s.retries, s.ok), (3, 3, 2, 0));
    // The bus still serves the meter that is there.
    assert!(meter(&bus, 1, p).read_all().await.is_ok());
}

#[tokio::test]
async fn exceptions_are_distinct_and_only_busy_is_retried() {
    let p = profile("abb-b23", 500, 20, 1);
    let (bus, _sim, _) = start(vec![
        SimMeter {
            unit: 1,
            profile: p.clone(),
            import_wh: 1000.0,
            faults: &["exception:2@1"],
        },
        SimMeter {
            unit: 2,
            profile: p.clone(),
            import_wh: 1000.0,
            faults: &["exception:6@1"],
        },
    ]);
    let error = meter(&bus, 1, p.clone())
        .read_energy_wh(&[Role::EnergyImport])
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            MeterError::Read(ReadError::Exception {
                unit: 1,
                function: 0x03,
                address: 0x5000,
                code: 2
            })
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("illegal data address"),
        "{error}"
    );
    assert_eq!(
        bus.stats().meters[&1].requests,
        1,
        "illegal address is final"
    );
    // "Server device busy" is worth another try, which succeeds.
    assert!(
        meter(&bus, 2, p)
            .read_energy_wh(&[Role::EnergyImport])
            .await
            .is_ok()
    );
    let s = bus.stats().meters[&2];
    assert_eq!((s.requests, s.exceptions, s.retries, s.ok), (2, 1, 1, 1));
}

#[tokio::test]
async fn a_crc_error_is_reported_as_such_and_retried() {
    let once = profile("sdm630", 150, 50, 0);
    let (bus, _sim, _) = start(vec![SimMeter {
        unit: 7,
        profile: once.clone(),
        import_wh: 1000.0,
        faults: &["corrupt@1", "corrupt@2"],
    }]);
    let error = meter(&bus, 7, once).read_all().await.unwrap_err();
    assert!(
        matches!(error, MeterError::Read(ReadError::Crc { unit: 7, .. })),
        "{error}"
    );
    // With one retry the second corrupted answer fails too, the third is good.
    let retrying = profile("sdm630", 150, 50, 2);
    assert!(meter(&bus, 7, retrying).read_all().await.is_ok());
    let s = bus.stats().meters[&7];
    assert_eq!((s.requests, s.crc_errors, s.ok), (3, 2, 1));
}

#[tokio::test]
async fn garbage_on_the_line_before_a_good_answer_is_skipped() {
    let p = profile("em24", 500, 50, 0);
    let (bus, _sim, _) = start(vec![SimMeter {
        unit: 3,
        profile: p.clone(),
        import_wh: 2_500_000.0,
        faults: &["noise@1"],
    }]);
    // No retries allowed: the first answer, behind the noise, must be taken.
    let wh = meter(&bus, 3, p)
        .read_energy_wh(&[Role::EnergyImport])
        .await
        .unwrap();
    assert_eq!(wh, vec![2_500_000]);
    let s = bus.stats().meters[&3];
    assert_eq!((s.requests, s.ok, s.errors), (1, 1, 0));
}

#[tokio::test]
async fn a_late_answer_is_discarded_not_taken_for_the_next_request() {
    // Unit 1 answers its first request 250 ms late, after the 150 ms timeout. Without a quiet
    // period the next request (to unit 2) would receive unit 1's late answer first and fail
    // with a header mismatch; with 200 ms of recovery the late answer arrives while the bus is
    // still listening and is thrown away.
    let p = profile("abb-b23", 150, 200, 0);
    let (bus, _sim, _) = start(vec![
        SimMeter {
            unit: 1,
            profile: p.clone(),
            import_wh: 1_000_000.0,
            faults: &["late:250@1"],
        },
        SimMeter {
            unit: 2,
            profile: p.clone(),
            import_wh: 2_000_000.0,
            faults: &[],
        },
    ]);
    let error = meter(&bus, 1, p.clone())
        .read_energy_wh(&[Role::EnergyImport])
        .await
        .unwrap_err();
    assert!(
        matches!(error, MeterError::Read(ReadError::Timeout { unit: 1, .. })),
        "{error}"
    );
    let wh = meter(&bus, 2, p)
        .read_energy_wh(&[Role::EnergyImport])
        .await
        .unwrap();
    assert_eq!(wh, vec![2_000_000]);
    let stats = bus.stats();
    assert_eq!(stats.meters[&2].ok, 1);
    // The late answer: 1 + 1 + 1 + 16 + 2 bytes for eight registers.
    assert_eq!(stats.discarded_bytes, 21);
}
