//! The REST API against a real [`Service`] with two machines, driven as spinnman drives it.

use super::*;
use crate::{ClientId, Server};
use serde_json::{Value, json};
use spinnbed_core::alloc::Shape;
use spinnbed_core::geometry::{Addressing, Board, IpScheme, Link, Machine, MachineSpec};
use spinnbed_core::service::{ServiceConfig, ServiceInput};

/// 2026-11-22T02:05:51.871Z, the capture's time.
const T0: Instant = Instant(1_795_313_151_871_000);
const KA: &str = "PT120S";

struct World {
    api: RestApi,
    svc: Service,
    urls: Urls,
    alice: Caller,
    bob: Caller,
    admin: Caller,
}

/// Machine `m`: 2 × 2 triads, tag `default`, 192.168.0.0/16. Machine `other`: 1 × 1 triad,
/// tag `other`, 10.11.0.0/16, board (0, 0, 2) dead and (0, 0, 0)'s north link down.
fn world() -> World {
    let mut svc = Service::new(ServiceConfig::default());
    svc.add_machine(T0, Machine::new(MachineSpec::new("m", 2, 2)).unwrap())
        .unwrap();
    let other = MachineSpec {
        tags: vec!["other".into()],
        dead_boards: vec![Board::new(0, 0, 2)],
        dead_links: vec![(Board::new(0, 0, 0), Link::North)],
        addressing: Addressing::Scheme(IpScheme::standard(Ipv4Addr::new(10, 11, 0, 0))),
        ..MachineSpec::new("other", 1, 1)
    };
    svc.add_machine(T0, Machine::new(other).unwrap()).unwrap();
    while svc.poll_event().is_some() {}
    World {
        api: RestApi::default(),
        svc,
        urls: Urls::new("127.0.0.1", 18471),
        alice: Caller::user("alice", Some("10.0.0.1")),
        bob: Caller::user("bob", Some("10.0.0.2")),
        admin: Caller::admin("root", Some("10.0.0.3")),
    }
}

impl World {
    fn call_at(&mut self, now: Instant, who: &Caller, call: RestCall) -> RestReply {
        self.api.handle(now, who, &self.urls, call, &mut self.svc)
    }

    fn call(&mut self, who: &Caller, call: RestCall) -> RestReply {
        self.call_at(T0, who, call)
    }

    /// Creates a job, expecting success; returns its id.
    fn create(&mut self, who: &Caller, body: Value) -> JobId {
        let r = self.call(
            &who.clone(),
            RestCall::CreateJob {
                body: body.to_string().into_bytes(),
            },
        );
        let RestReply::Created { location, body } = &r else {
            panic!("{body}: {r:?}")
        };
        let doc: Value = serde_json::from_str(body).unwrap();
        let id = doc["job-id"].as_u64().unwrap();
        assert_eq!(
            location,
            &format!("https://127.0.0.1:18471/spalloc/srv/spalloc/jobs/{id}")
        );
        assert_eq!(doc["job-ref"], json!(location));
        JobId(id)
    }

    fn refused(&mut self, who: &Caller, body: Value) -> String {
        match self.call(
            &who.clone(),
            RestCall::CreateJob {
                body: body.to_string().into_bytes(),
            },
        ) {
            RestReply::BadRequest(m) => m,
            r => panic!("{body}: {r:?}"),
        }
    }

    fn state(&mut self, who: &Caller, id: JobId) -> Value {
        doc(&self.call(&who.clone(), RestCall::GetJob { id }))
    }

    /// Every BMP batch done: allocated jobs become ready.
    fn ack(&mut self) {
        while let Some(b) = self.svc.poll_bmp_batch() {
            self.svc.handle_bmp_batch_done(T0, b.id, Ok(())).unwrap();
        }
    }
}

/// The JSON of a 200 or 201.
fn doc(r: &RestReply) -> Value {
    assert!(matches!(r, RestReply::Json(_) | RestReply::Created { .. }), "{r:?}");
    serde_json::from_slice(r.body()).unwrap()
}

fn one_board(tags: &str) -> Value {
    json!({"num-boards": 1, "tags": [tags], "keepalive-interval": KA})
}

const BASE: &str = "https://127.0.0.1:18471/spalloc/srv/spalloc";

#[test]
fn the_root_document_has_the_five_keys_with_absolute_https_refs() {
    let mut w = world();
    let alice = w.alice.clone();
    let r = w.call(
        &alice,
        RestCall::Root {
            csrf_header: "X-CSRF-TOKEN".into(),
            csrf_token: "tok-1".into(),
        },
    );
    assert_eq!(r.content_type(), Some("application/json"));
    assert_eq!(
        doc(&r),
        json!({
            "version": {"major-version": 0, "minor-version": 1, "revision": 0},
            "jobs-ref": format!("{BASE}/jobs"),
            "machines-ref": format!("{BASE}/machines"),
            "csrf-header": "X-CSRF-TOKEN",
            "csrf-token": "tok-1",
        })
    );
}

#[test]
fn machines_are_listed_with_their_dead_boards_and_links() {
    let mut w = world();
    let alice = w.alice.clone();
    let d = doc(&w.call(&alice, RestCall::ListMachines));
    let ms = d["machines"].as_array().unwrap();
    assert_eq!(ms.len(), 2);
    assert_eq!(
        ms[0],
        json!({"name": "m", "tags": ["default"], "uri": format!("{BASE}/machines/m"), "width": 2, "height": 2,
               "dead-boards": [], "dead-links": []})
    );
    assert_eq!(ms[1]["name"], json!("other"));
    assert_eq!(ms[1]["tags"], json!(["other"]));
    assert_eq!(
        ms[1]["dead-boards"],
        json!([{"x": 0, "y": 0, "z": 2, "cabinet": 0, "frame": 0, "board": 2, "address": "10.11.0.17"}])
    );
    // Board (0, 0, 0)'s north link reaches (0, 0, 2) on a 1 × 1 torus: one link, both ends.
    assert_eq!(
        ms[1]["dead-links"],
        json!([[
            {"board": {"x": 0, "y": 0, "z": 0, "cabinet": 0, "frame": 0, "board": 0, "address": "10.11.0.1"}, "direction": "N"},
            {"board": {"x": 0, "y": 0, "z": 2, "cabinet": 0, "frame": 0, "board": 2, "address": "10.11.0.17"}, "direction": "S"}
        ]])
    );
    // One machine by name.
    let one = doc(&w.call(&alice, RestCall::GetMachine { name: "other".into() }));
    assert_eq!(one["down-boards"], ms[1]["dead-boards"]);
    assert_eq!(one["down-links"], ms[1]["dead-links"]);
    assert_eq!(
        one["lookup-by-address"],
        json!(format!("{BASE}/machines/other/board-ip"))
    );
    assert_eq!(
        w.call(&alice, RestCall::GetMachine { name: "nope".into() }),
        RestReply::NotFound("no such machine".into())
    );
}

#[test]
fn a_dead_link_listed_from_both_ends_is_one_link() {
    let spec = MachineSpec {
        dead_links: vec![(Board::new(0, 0, 0), Link::East), (Board::new(0, 0, 0), Link::East)],
        ..MachineSpec::new("m", 2, 2)
    };
    let m = Machine::new(spec.clone()).unwrap();
    let (n, _) = spinnbed_core::geometry::board_down_link(Board::new(0, 0, 0), Link::East, 2, 2);
    let both = MachineSpec {
        dead_links: vec![(Board::new(0, 0, 0), Link::East), (n, Link::West)],
        ..spec
    };
    let m2 = Machine::new(both).unwrap();
    let links = serde_json::to_value(docs::dead_links(&m)).unwrap();
    assert_eq!(links, serde_json::to_value(docs::dead_links(&m2)).unwrap());
    assert_eq!(links.as_array().unwrap().len(), 1);
    assert_eq!(links[0][0]["direction"], json!("SE"));
    assert_eq!(links[0][1]["direction"], json!("NW"));
}

#[test]
fn the_clients_one_board_job_goes_through_its_life() {
    let mut w = world();
    let alice = w.alice.clone();
    let id = w.create(&alice, one_board("default"));
    // Allocated at once: powering, with a proxy.
    let s = w.state(&alice, id);
    assert_eq!(
        s,
        json!({
            "state": "POWER", "owner": "alice",
            "start-time": "2026-11-22T02:05:51.871Z", "keep-alive-time": "2026-11-22T02:05:51.871Z",
            "keepalive-host": "10.0.0.1",
            "keepalive-ref": format!("{BASE}/jobs/1/keepalive"),
            "machine-ref": format!("{BASE}/jobs/1/machine"),
            "chip-ref": format!("{BASE}/jobs/1/chip"),
            "power-ref": format!("{BASE}/jobs/1/machine/power"),
            "proxy-ref": "wss://127.0.0.1:18471/spalloc/proxy/1",
            "original-request": {"num-boards": 1, "tags": ["default"], "max-dead-boards": 0, "keepalive-interval": "PT2M"},
        })
    );
    w.ack();
    assert_eq!(w.state(&alice, id)["state"], json!("READY"));
    // The keepalive thread's PUT, ten seconds later from another address.
    let later = Instant(T0.0 + 10_000_000);
    let moved = Caller::user("alice", Some("10.0.0.9"));
    assert_eq!(
        w.call_at(later, &moved, RestCall::Keepalive { id }),
        RestReply::Text("ok".into())
    );
    let s = w.state(&alice, id);
    assert_eq!(s["keep-alive-time"], json!("2026-11-22T02:06:01.871Z"));
    assert_eq!(s["keepalive-host"], json!("10.0.0.9"));
    // Connections and chips.
    let m = doc(&w.call(&alice, RestCall::JobMachine { id }));
    assert_eq!(
        m,
        json!({"width": 1, "height": 1, "depth": 1, "machine-name": "m",
               "connections": [[[0, 0], "192.168.0.1"]], "boards": [[0, 0, 0]],
               "power": format!("{BASE}/jobs/1/machine/power"), "machine-ref": format!("{BASE}/machines/m")})
    );
    let c = doc(&w.call(&alice, RestCall::JobChip { id, x: 0, y: 0 }));
    assert_eq!(
        c,
        json!({"job-id": 1, "job-ref": format!("{BASE}/jobs/1"), "job-chip": [0, 0], "chip": [0, 0],
               "logical-board-coordinates": [0, 0, 0], "machine": "m", "machine-ref": format!("{BASE}/machines/m"),
               "board-chip": [0, 0], "physical-board-coordinates": [0, 0, 0]})
    );
    assert_eq!(
        w.call(&alice, RestCall::JobChip { id, x: 9, y: 9 }),
        RestReply::NoContent
    );
    assert_eq!(
        w.call(&alice, RestCall::ProxyBoards { id }),
        RestReply::Connections(vec![(Chip::new(0, 0), Ipv4Addr::new(192, 168, 0, 1))])
    );
    assert_eq!(
        w.call(&alice, RestCall::MemoryTarget { id, x: 3, y: 2 }),
        RestReply::Target(BoardTarget {
            ip: Ipv4Addr::new(192, 168, 0, 1),
            chip_x: 3,
            chip_y: 2
        })
    );
    // SCP's default destination (spinnman reads the machine's size there through REST): the
    // root board's Ethernet chip, the destination kept as given.
    assert_eq!(
        w.call(&alice, RestCall::MemoryTarget { id, x: 255, y: 255 }),
        RestReply::Target(BoardTarget {
            ip: Ipv4Addr::new(192, 168, 0, 1),
            chip_x: 255,
            chip_y: 255
        })
    );
    // Listed, then destroyed with the client's reason.
    let l = doc(&w.call(
        &alice,
        RestCall::ListJobs {
            deleted: false,
            start: None,
            limit: None,
        },
    ));
    assert_eq!(l, json!({"jobs": [format!("{BASE}/jobs/1")]}));
    let gone = Instant(T0.0 + 20_000_000);
    let r = w.call_at(
        gone,
        &alice,
        RestCall::DeleteJob {
            id,
            reason: Some("client-check finished".into()),
        },
    );
    assert_eq!((r.status(), r.body()), (204, &b""[..]));
    let s = w.state(&alice, id);
    assert_eq!(
        s,
        json!({
            "state": "DESTROYED", "owner": "alice",
            "start-time": "2026-11-22T02:05:51.871Z", "finish-time": "2026-11-22T02:06:11.871Z",
            "reason": "client-check finished",
            "keepalive-ref": format!("{BASE}/jobs/1/keepalive"),
            "machine-ref": format!("{BASE}/jobs/1/machine"),
            "chip-ref": format!("{BASE}/jobs/1/chip"),
            "power-ref": format!("{BASE}/jobs/1/machine/power"),
            "original-request": {"num-boards": 1, "tags": ["default"], "max-dead-boards": 0, "keepalive-interval": "PT2M"},
        })
    );
    // What spinnman still does to a destroyed job: keep it alive, delete it again, look.
    assert_eq!(w.call(&alice, RestCall::Keepalive { id }), RestReply::Text("ok".into()));
    assert_eq!(
        w.call(&alice, RestCall::DeleteJob { id, reason: None }),
        RestReply::NoContent
    );
    assert_eq!(w.call(&alice, RestCall::JobMachine { id }), RestReply::NoContent);
    assert_eq!(
        w.call(&alice, RestCall::JobChip { id, x: 0, y: 0 }),
        RestReply::NoContent
    );
    assert_eq!(
        w.call(&alice, RestCall::ProxyBoards { id }),
        RestReply::Unavailable(NO_PROXY.into())
    );
    assert_eq!(w.call(&alice, RestCall::MemoryTarget { id, x: 0, y: 0 }).status(), 503);
    let l = |deleted| RestCall::ListJobs {
        deleted,
        start: None,
        limit: None,
    };
    assert_eq!(doc(&w.call(&alice, l(false))), json!({"jobs": []}));
    assert_eq!(
        doc(&w.call(&alice, l(true))),
        json!({"jobs": [format!("{BASE}/jobs/1")]})
    );
}

#[test]
fn rectangles_rooted_at_a_board_are_placed_there() {
    let mut w = world();
    let alice = w.alice.clone();
    // spalloc_physical with width and height: board 3 of frame 0 is (1, 0, 0), so the triads
    // (1, 0) and (1, 1), on m (where that board is).
    let id = w.create(
        &alice,
        json!({"board": {"cabinet": 0, "frame": 0, "board": 3}, "dimensions": {"width": 1, "height": 2}, "tags": ["default"], "keepalive-interval": KA}),
    );
    let j = w.svc.job(id).unwrap();
    assert_eq!(
        j.request.shape,
        Shape::TriadsAt {
            root: Board::new(1, 0, 0),
            w: 1,
            h: 2
        }
    );
    assert_eq!((j.machine.as_deref(), j.tags.clone()), (Some("m"), None));
    let mut want: Vec<Board> = (0..2).flat_map(|y| (0..3).map(move |z| Board::new(1, y, z))).collect();
    want.sort();
    assert_eq!(j.boards, want);
    // The job reads back as it was asked for.
    let s = w.state(&alice, id);
    assert_eq!(s["original-request"]["dimensions"], json!({"width": 1, "height": 2}));
    assert_eq!(s["original-request"]["board"], json!({"x": 1, "y": 0, "z": 0}));
    // spalloc_triad with width and height: the other column; a third overlapping one waits.
    let id2 = w.create(
        &alice,
        json!({"board": {"x": 0, "y": 0, "z": 0}, "dimensions": {"width": 1, "height": 2}, "tags": ["default"], "keepalive-interval": KA}),
    );
    assert_eq!(w.svc.job(id2).unwrap().boards.len(), 6);
    let id3 = w.create(
        &alice,
        json!({"board": {"x": 0, "y": 1, "z": 0}, "dimensions": {"width": 2, "height": 1}, "machine-name": "m", "keepalive-interval": KA}),
    );
    assert_eq!(w.state(&alice, id3)["state"], json!("QUEUED"));
    // One that can never fit (past the machine's edge) ends at once, as an impossible v1 job.
    let id4 = w.create(
        &alice,
        json!({"board": {"x": 1, "y": 1, "z": 0}, "dimensions": {"width": 2, "height": 1}, "machine-name": "m", "keepalive-interval": KA}),
    );
    assert_eq!(w.state(&alice, id4)["state"], json!("DESTROYED"));
    // A physical board no candidate machine has.
    let e = w.refused(
        &alice,
        json!({"board": {"cabinet": 0, "frame": 0, "board": 23}, "dimensions": {"width": 1, "height": 1}, "tags": ["default"], "keepalive-interval": KA}),
    );
    assert!(e.contains("no board at cabinet 0, frame 0, board 23"), "{e}");
}

#[test]
fn every_request_form_the_client_sends_is_placed() {
    let mut w = world();
    let alice = w.alice.clone();
    let req = |w: &World, id: JobId| w.svc.job(id).unwrap();
    // n_boards_required = 3.
    let id = w.create(
        &alice,
        json!({"num-boards": 3, "tags": ["default"], "keepalive-interval": KA}),
    );
    let j = req(&w, id);
    assert_eq!(j.request.shape, Shape::Boards { n: 3, min_ratio: 0.333 });
    assert_eq!(j.request.max_dead_boards, Some(0));
    assert_eq!(
        (j.tags.clone(), j.machine.clone()),
        (Some(vec!["default".to_string()]), None)
    );
    assert_eq!(j.keepalive, Some(Duration::from_secs(120)));
    assert_eq!(j.boards.len(), 3);
    // spalloc_machine = m, spalloc_max_dead_boards = 1.
    let id = w.create(
        &alice,
        json!({"num-boards": 1, "machine-name": "m", "max-dead-boards": 1, "keepalive-interval": KA}),
    );
    let j = req(&w, id);
    assert_eq!(
        (j.request.shape, j.machine.as_deref(), j.tags.clone()),
        (Shape::AnyBoard, Some("m"), None)
    );
    // spalloc_triad = 1,1,1.
    let id = w.create(
        &alice,
        json!({"board": {"x": 1, "y": 1, "z": 1}, "tags": ["default"], "keepalive-interval": KA}),
    );
    assert_eq!(req(&w, id).boards, vec![Board::new(1, 1, 1)]);
    // spalloc_physical alone: board 3 of frame 0 is (1, 0, 0), pinned to m.
    let id = w.create(
        &alice,
        json!({"board": {"cabinet": 0, "frame": 0, "board": 3}, "tags": ["default"], "keepalive-interval": KA}),
    );
    let j = req(&w, id);
    assert_eq!(
        (j.boards.clone(), j.machine.as_deref(), j.tags.clone()),
        (vec![Board::new(1, 0, 0)], Some("m"), None)
    );
    // spalloc_ip_address: 10.11.0.9 is board (0, 0, 1) of `other` (tag `other`).
    let id = w.create(
        &alice,
        json!({"board": {"address": "10.11.0.9"}, "tags": ["other"], "keepalive-interval": KA}),
    );
    let j = req(&w, id);
    assert_eq!(
        (j.boards.clone(), j.allocated_machine_name.as_deref()),
        (vec![Board::new(0, 0, 1)], Some("other"))
    );
    // ... but not among the machines tagged `default`.
    let e = w.refused(
        &alice,
        json!({"board": {"address": "10.11.0.9"}, "tags": ["default"], "keepalive-interval": KA}),
    );
    assert_eq!(
        e,
        "board: no board with address 10.11.0.9 on any machine with the tags [\"default\"]"
    );
    let e = w.refused(
        &alice,
        json!({"board": {"cabinet": 9, "frame": 0, "board": 0}, "machine-name": "m", "keepalive-interval": KA}),
    );
    assert_eq!(e, "board: no board at cabinet 9, frame 0, board 0 on machine 'm'");
    // spalloc_width = 2, spalloc_height = 1 (queued: m is busy).
    let id = w.create(
        &alice,
        json!({"dimensions": {"width": 2, "height": 1}, "tags": ["default"], "keepalive-interval": KA}),
    );
    assert_eq!(req(&w, id).request.shape, Shape::Triads { w: 2, h: 1 });
    // group, collab, NMPI job: kept for the record only; a user's `owner` is ignored.
    for extra in [
        json!({"group": "grp"}),
        json!({"nmpi-collab": "col1"}),
        json!({"nmpi-job-id": 42, "owner": "nmpiuser"}),
    ] {
        let mut body = json!({"num-boards": 2, "tags": ["default"], "keepalive-interval": KA});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let id = w.create(&alice, body);
        assert_eq!(req(&w, id).owner, "alice");
    }
    // An administrator's `owner` is used.
    let admin = w.admin.clone();
    let id = w.create(
        &admin,
        json!({"num-boards": 1, "tags": ["default"], "owner": " carol ", "keepalive-interval": KA}),
    );
    assert_eq!(req(&w, id).owner, "carol");
    let id = w.create(&admin, one_board("default"));
    assert_eq!(req(&w, id).owner, "root");
}

#[test]
fn refusals_are_400s_that_name_the_key() {
    let mut w = world();
    let alice = w.alice.clone();
    let e = w.refused(
        &alice,
        json!({"num-boards": 1, "tags": ["default"], "keepalive-interval": "PT10S"}),
    );
    assert_eq!(e, "keepalive-interval PT10S is below the minimum of 30 s");
    let e = w.refused(
        &alice,
        json!({"num-boards": 1, "tags": ["default"], "keepalive-interval": "2 minutes"}),
    );
    assert!(
        e.starts_with("keepalive-interval '2 minutes' is not an ISO-8601 duration"),
        "{e}"
    );
    let e = w.refused(
        &alice,
        json!({"num-boards": 1, "tags": ["default"], "keepalive-interval": KA, "machine": "m"}),
    );
    assert!(e.starts_with("unknown key 'machine'"), "{e}");
    let e = w.refused(
        &alice,
        json!({"num-boards": 1, "machine-name": "nope", "keepalive-interval": KA}),
    );
    assert_eq!(e, "no machine named 'nope'");
    let e = w.refused(
        &alice,
        json!({"num-boards": 1, "tags": ["gpu"], "keepalive-interval": KA}),
    );
    assert_eq!(e, "no machine has all the tags [\"gpu\"]");
    let r = w.call(
        &alice,
        RestCall::CreateJob {
            body: b"{\"num-boards\": 1,".to_vec(),
        },
    );
    assert_eq!(r.status(), 400);
    assert_eq!(r.content_type(), Some("text/plain; charset=utf-8"));
    let text = String::from_utf8(r.body().to_vec()).unwrap();
    assert!(text.contains("line 1 column 17"), "{text}");
    // Nothing refused reached the service.
    assert_eq!(w.svc.list_jobs().len(), 0);
    let id = w.create(&alice, one_board("default"));
    assert_eq!(id, JobId(1));
}

#[test]
fn a_job_too_big_for_any_machine_is_created_and_cancelled_as_in_v1() {
    let mut w = world();
    let alice = w.alice.clone();
    let id = w.create(
        &alice,
        json!({"dimensions": {"width": 5, "height": 5}, "tags": ["default"], "keepalive-interval": KA}),
    );
    let s = w.state(&alice, id);
    assert_eq!(s["state"], json!("DESTROYED"));
    assert_eq!(s["reason"], json!("No suitable machines available."));
}

#[test]
fn another_users_job_answers_exactly_as_a_missing_one() {
    let mut w = world();
    let (alice, bob) = (w.alice.clone(), w.bob.clone());
    let live = w.create(
        &alice,
        json!({"num-boards": 2, "tags": ["default"], "keepalive-interval": KA}),
    );
    let queued = w.create(
        &alice,
        json!({"dimensions": {"width": 2, "height": 2}, "tags": ["default"], "keepalive-interval": KA}),
    );
    let dead = w.create(&alice, one_board("default"));
    w.call(&alice, RestCall::DeleteJob { id: dead, reason: None });
    w.ack();
    let missing = JobId(999);
    let calls = |id: JobId| {
        vec![
            RestCall::GetJob { id },
            RestCall::Keepalive { id },
            RestCall::JobMachine { id },
            RestCall::JobChip { id, x: 0, y: 0 },
            RestCall::GetPower { id },
            RestCall::SetPower {
                id,
                body: br#"{"power": "OFF"}"#.to_vec(),
            },
            RestCall::SetPower {
                id,
                body: b"garbage".to_vec(),
            },
            RestCall::MemoryTarget { id, x: 0, y: 0 },
            RestCall::RouterTargets { id },
            RestCall::ProxyBoards { id },
            RestCall::DeleteJob {
                id,
                reason: Some("mine now".into()),
            },
        ]
    };
    w.svc.record_inputs(true);
    for id in [live, queued, dead] {
        for (theirs, none) in calls(id).into_iter().zip(calls(missing)) {
            let a = w.call(&bob, theirs.clone());
            let b = w.call(&bob, none);
            assert_eq!(a, b, "{theirs:?}");
            assert_eq!(a, RestReply::NotFound(NO_SUCH_JOB.into()));
        }
    }
    // Bob changed nothing.
    assert_eq!(w.svc.take_recorded(), vec![]);
    assert_eq!(w.state(&alice, live)["state"], json!("READY"));
    assert_eq!(w.state(&alice, live)["keepalive-host"], json!("10.0.0.1"));
    let all = RestCall::ListJobs {
        deleted: true,
        start: None,
        limit: None,
    };
    assert_eq!(doc(&w.call(&bob, all.clone())), json!({"jobs": []}));
    // An administrator sees and controls everything.
    let admin = w.admin.clone();
    assert_eq!(doc(&w.call(&admin, all.clone()))["jobs"].as_array().unwrap().len(), 3);
    assert_eq!(w.state(&admin, live)["owner"], json!("alice"));
    assert_eq!(
        w.call(&admin, RestCall::DeleteJob { id: live, reason: None }),
        RestReply::NoContent
    );
    assert_eq!(w.state(&alice, live)["reason"], json!("unspecified"));
}

#[test]
fn where_is_on_a_machine_hides_other_users_jobs() {
    let mut w = world();
    let (alice, bob) = (w.alice.clone(), w.bob.clone());
    let id = w.create(
        &alice,
        json!({"board": {"x": 0, "y": 0, "z": 1}, "tags": ["default"], "keepalive-interval": KA}),
    );
    let q = |lookup| RestCall::WhereIs {
        machine: "m".into(),
        lookup,
    };
    let logical = MachineLookup::Logical { x: 0, y: 0, z: 1 };
    let mine = doc(&w.call(&alice, q(logical.clone())));
    assert_eq!(
        mine,
        json!({"job-id": id.0, "job-ref": format!("{BASE}/jobs/{}", id.0), "job-chip": [0, 0], "chip": [8, 4],
               "logical-board-coordinates": [0, 0, 1], "machine": "m", "machine-ref": format!("{BASE}/machines/m"),
               "board-chip": [0, 0], "physical-board-coordinates": [0, 0, 1]})
    );
    let theirs = doc(&w.call(&bob, q(logical)));
    let mut expected = mine.clone();
    for k in ["job-id", "job-ref", "job-chip"] {
        expected.as_object_mut().unwrap().remove(k);
    }
    assert_eq!(theirs, expected);
    // Every way of naming the board finds it.
    for lookup in [
        MachineLookup::Physical {
            cabinet: 0,
            frame: 0,
            board: 1,
        },
        MachineLookup::Chip { x: 9, y: 5 },
        MachineLookup::BoardIp {
            address: "192.168.0.9".into(),
        },
    ] {
        let mut d = doc(&w.call(&alice, q(lookup)));
        d["chip"] = json!([8, 4]);
        d["board-chip"] = json!([0, 0]);
        d["job-chip"] = json!([0, 0]);
        assert_eq!(d, mine);
    }
    for lookup in [
        MachineLookup::Logical { x: 5, y: 0, z: 0 },
        MachineLookup::Logical { x: -1, y: 0, z: 0 },
        MachineLookup::Physical {
            cabinet: 7,
            frame: 0,
            board: 0,
        },
        MachineLookup::BoardIp {
            address: "10.11.0.1".into(),
        },
        MachineLookup::BoardIp {
            address: "not an address".into(),
        },
    ] {
        assert_eq!(w.call(&alice, q(lookup)), RestReply::NotFound(NO_SUCH_BOARD.into()));
    }
    let r = w.call(
        &alice,
        RestCall::WhereIs {
            machine: "nope".into(),
            lookup: MachineLookup::Chip { x: 0, y: 0 },
        },
    );
    assert_eq!(r, RestReply::NotFound(NO_SUCH_MACHINE.into()));
}

#[test]
fn a_queued_job_has_no_machine_chips_power_or_proxy() {
    let mut w = world();
    let alice = w.alice.clone();
    let big = json!({"dimensions": {"width": 2, "height": 2}, "tags": ["default"], "keepalive-interval": KA});
    w.create(&alice, big.clone());
    let id = w.create(&alice, big);
    let s = w.state(&alice, id);
    assert_eq!(s["state"], json!("QUEUED"));
    assert!(s.get("proxy-ref").is_none());
    assert_eq!(w.call(&alice, RestCall::JobMachine { id }), RestReply::NoContent);
    assert_eq!(
        w.call(&alice, RestCall::JobChip { id, x: 0, y: 0 }),
        RestReply::NoContent
    );
    assert_eq!(w.call(&alice, RestCall::GetPower { id }), RestReply::NoContent);
    assert_eq!(
        w.call(
            &alice,
            RestCall::SetPower {
                id,
                body: br#"{"power": "ON"}"#.to_vec()
            }
        ),
        RestReply::NoContent
    );
    assert_eq!(
        w.call(&alice, RestCall::ProxyBoards { id }),
        RestReply::Unavailable("job not in state where proxying permitted".into())
    );
    assert_eq!(
        w.call(&alice, RestCall::MemoryTarget { id, x: 0, y: 0 }),
        RestReply::Unavailable(format!("job {} has no boards to reach (it is queued)", id.0))
    );
    assert_eq!(w.call(&alice, RestCall::RouterTargets { id }).status(), 503);
}

#[test]
fn a_rectangle_job_reports_triads_and_reaches_every_chip_through_its_own_board() {
    let mut w = world();
    let alice = w.alice.clone();
    let id = w.create(
        &alice,
        json!({"dimensions": {"width": 1, "height": 1}, "tags": ["default"], "keepalive-interval": KA}),
    );
    w.ack();
    let m = doc(&w.call(&alice, RestCall::JobMachine { id }));
    assert_eq!(
        (m["width"].clone(), m["height"].clone(), m["depth"].clone()),
        (json!(1), json!(1), json!(3))
    );
    assert_eq!(
        m["connections"],
        json!([
            [[0, 0], "192.168.0.1"],
            [[4, 8], "192.168.0.17"],
            [[8, 4], "192.168.0.9"]
        ])
    );
    assert_eq!(m["boards"], json!([[0, 0, 0], [0, 0, 1], [0, 0, 2]]));
    // Chip (9, 5) is on board (0, 0, 1), reached through its own Ethernet address.
    assert_eq!(
        w.call(&alice, RestCall::MemoryTarget { id, x: 9, y: 5 }),
        RestReply::Target(BoardTarget {
            ip: Ipv4Addr::new(192, 168, 0, 9),
            chip_x: 9,
            chip_y: 5
        })
    );
    assert_eq!(
        w.call(&alice, RestCall::MemoryTarget { id, x: 12, y: 0 }),
        RestReply::BadRequest(format!("chip (12, 0) is not in job {}", id.0))
    );
    let RestReply::Targets(all) = w.call(&alice, RestCall::RouterTargets { id }) else {
        panic!()
    };
    assert_eq!(all.len(), 3 * 48);
    for t in &all {
        let RestReply::Target(one) = w.call(
            &alice,
            RestCall::MemoryTarget {
                id,
                x: t.chip_x.into(),
                y: t.chip_y.into(),
            },
        ) else {
            panic!("{t:?}")
        };
        assert_eq!(&one, t);
    }
    let c = doc(&w.call(&alice, RestCall::JobChip { id, x: 9, y: 5 }));
    assert_eq!(c["physical-board-coordinates"], json!([0, 0, 1]));
    assert_eq!(c["board-chip"], json!([1, 1]));
}

#[test]
fn power_is_read_and_set_through_the_service() {
    let mut w = world();
    let alice = w.alice.clone();
    let id = w.create(&alice, one_board("default"));
    w.ack();
    assert_eq!(doc(&w.call(&alice, RestCall::GetPower { id })), json!({"power": "ON"}));
    let set = |p: &str| RestCall::SetPower {
        id,
        body: format!("{{\"power\": \"{p}\"}}").into_bytes(),
    };
    assert_eq!(w.call(&alice, set("OFF")), RestReply::Accepted);
    assert_eq!(w.state(&alice, id)["state"], json!("POWER"));
    w.ack();
    assert_eq!(doc(&w.call(&alice, RestCall::GetPower { id })), json!({"power": "OFF"}));
    assert_eq!(w.call(&alice, set("ON")), RestReply::Accepted);
    for bad in [
        &b"{\"power\": \"HALF\"}"[..],
        b"{\"power\": \"ON\", \"x\": 1}",
        b"[]",
        b"{",
    ] {
        let r = w.call(&alice, RestCall::SetPower { id, body: bad.to_vec() });
        let RestReply::BadRequest(m) = &r else { panic!("{r:?}") };
        assert!(m.starts_with("bad power description"), "{m}");
    }
}

#[test]
fn jobs_are_listed_in_pages_in_id_order() {
    let mut w = world();
    let (alice, bob) = (w.alice.clone(), w.bob.clone());
    let big = json!({"dimensions": {"width": 2, "height": 2}, "tags": ["default"], "keepalive-interval": KA});
    let mut mine = Vec::new();
    for i in 0..260 {
        let who = if i % 5 == 4 { &bob } else { &alice };
        let id = w.create(who, big.clone());
        if i % 5 != 4 {
            mine.push(id.0);
        }
    }
    assert_eq!(mine.len(), 208);
    // Destroy a few of alice's.
    for id in [1u64, 2, 50] {
        w.call(
            &alice,
            RestCall::DeleteJob {
                id: JobId(id),
                reason: None,
            },
        );
    }
    let live: Vec<u64> = mine.iter().copied().filter(|i| ![1, 2, 50].contains(i)).collect();
    let url = |i: &u64| format!("{BASE}/jobs/{i}");
    let list =
        |w: &mut World, deleted, start, limit| doc(&w.call(&alice, RestCall::ListJobs { deleted, start, limit }));
    let page = list(&mut w, false, None, None);
    assert_eq!(page["jobs"], json!(live[..100].iter().map(url).collect::<Vec<_>>()));
    assert!(page.get("prev").is_none());
    assert_eq!(
        page["next"],
        json!(format!("{BASE}/jobs?wait=false&deleted=false&limit=100&start=100"))
    );
    let page = list(&mut w, false, Some(100), Some(100));
    assert_eq!(page["jobs"], json!(live[100..200].iter().map(url).collect::<Vec<_>>()));
    assert_eq!(
        page["prev"],
        json!(format!("{BASE}/jobs?wait=false&deleted=false&limit=100&start=0"))
    );
    assert!(page.get("next").is_some());
    let page = list(&mut w, false, Some(200), Some(100));
    assert_eq!(page["jobs"], json!(live[200..].iter().map(url).collect::<Vec<_>>()));
    assert!(page.get("next").is_none());
    let page = list(&mut w, false, Some(1000), Some(100));
    assert_eq!(page["jobs"], json!([]));
    let page = list(&mut w, true, None, Some(200));
    assert_eq!(page["jobs"], json!(mine[..200].iter().map(url).collect::<Vec<_>>()));
    assert_eq!(
        page["next"],
        json!(format!("{BASE}/jobs?wait=false&deleted=true&limit=200&start=200"))
    );
    // Following `next` to the end visits every job once.
    let mut seen = Vec::new();
    let mut start = 0;
    loop {
        let page = list(&mut w, true, Some(start), Some(7));
        seen.extend(page["jobs"].as_array().unwrap().iter().cloned());
        if page.get("next").is_none() {
            break;
        }
        start += 7;
    }
    assert_eq!(json!(seen), json!(mine.iter().map(url).collect::<Vec<_>>()));
    for (start, limit, msg) in [
        (None, Some(0), "limit must be between 1 and 200, got 0"),
        (None, Some(201), "limit must be between 1 and 200, got 201"),
        (Some(-1), None, "start must not be negative, got -1"),
    ] {
        let r = w.call(
            &alice,
            RestCall::ListJobs {
                deleted: false,
                start,
                limit,
            },
        );
        assert_eq!(r, RestReply::BadRequest(msg.into()));
    }
}

#[test]
fn v1_and_rest_jobs_are_the_same_jobs() {
    let mut w = world();
    let (alice, bob) = (w.alice.clone(), w.bob.clone());
    // Alice's v1 client makes a job.
    let mut v1 = Server::new();
    v1.connect(ClientId(1), "10.0.0.5");
    let line = br#"{"command": "create_job", "args": [1], "kwargs": {"owner": "alice", "keepalive": 60.0, "tags": ["default"]}}"#;
    v1.handle_line(T0, ClientId(1), line, &mut w.svc).unwrap();
    assert_eq!(v1.take_output(ClientId(1)), b"{\"return\": 1}\n");
    let s = w.state(&alice, JobId(1));
    assert_eq!(
        (s["state"].clone(), s["owner"].clone()),
        (json!("POWER"), json!("alice"))
    );
    assert_eq!(s["keepalive-host"], json!("10.0.0.5"));
    assert_eq!(s["original-request"]["keepalive-interval"], json!("PT1M"));
    assert_eq!(
        w.call(&bob, RestCall::GetJob { id: JobId(1) }),
        RestReply::no_such_job()
    );
    // Alice's REST client makes one; v1 lists both, with the REST job's request as args.
    let id = w.create(
        &alice,
        json!({"num-boards": 3, "tags": ["default"], "keepalive-interval": KA}),
    );
    v1.handle_line(T0, ClientId(1), br#"{"command": "list_jobs"}"#, &mut w.svc)
        .unwrap();
    let out: Value = serde_json::from_slice(&v1.take_output(ClientId(1))).unwrap();
    let jobs = out["return"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    let j = &jobs[1];
    assert_eq!(j["job_id"], json!(id.0));
    assert_eq!(j["owner"], json!("alice"));
    assert_eq!(j["args"], json!([3]));
    assert_eq!(
        j["kwargs"],
        json!({"machine": null, "tags": ["default"], "min_ratio": 0.333, "max_dead_boards": 0, "max_dead_links": null, "require_torus": false})
    );
    assert_eq!(j["keepalive"], json!(120.0));
    assert_eq!(j["keepalivehost"], json!("10.0.0.1"));
    // Destroyed over REST, v1 sees the reason.
    w.call(
        &alice,
        RestCall::DeleteJob {
            id,
            reason: Some("x y&z".into()),
        },
    );
    v1.handle_line(
        T0,
        ClientId(1),
        format!(r#"{{"command": "get_job_state", "args": [{}]}}"#, id.0).as_bytes(),
        &mut w.svc,
    )
    .unwrap();
    let out: Value = serde_json::from_slice(&v1.take_output(ClientId(1))).unwrap();
    assert_eq!(
        (out["return"]["state"].clone(), out["return"]["reason"].clone()),
        (json!(4), json!("x y&z"))
    );
}

#[test]
fn what_changes_the_service_is_journalled_and_replays() {
    let mut w = world();
    let alice = w.alice.clone();
    w.svc.record_inputs(true);
    let id = w.create(
        &alice,
        json!({"num-boards": 2, "tags": ["default"], "keepalive-interval": KA}),
    );
    let elsewhere = Caller::user("alice", Some("10.9.9.9"));
    w.call(&elsewhere, RestCall::Keepalive { id });
    w.call(
        &alice,
        RestCall::SetPower {
            id,
            body: br#"{"power": "OFF"}"#.to_vec(),
        },
    );
    w.call(
        &alice,
        RestCall::DeleteJob {
            id,
            reason: Some("bye".into()),
        },
    );
    // Reads record nothing.
    w.call(&alice, RestCall::GetJob { id });
    w.call(&alice, RestCall::ListMachines);
    let rec = w.svc.take_recorded();
    let kinds: Vec<&str> = rec
        .iter()
        .map(|i| match i {
            ServiceInput::CreateJob { .. } => "create",
            ServiceInput::Touch { .. } => "touch",
            ServiceInput::PowerOff { .. } => "power-off",
            ServiceInput::Destroy { .. } => "destroy",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["create", "touch", "power-off", "destroy"]);
    // A fresh service fed the same inputs tells the same story.
    let mut again = world();
    for i in &rec {
        again.svc.apply(i).unwrap_or(());
    }
    assert_eq!(again.state(&alice, id), w.state(&alice, id));
}

#[test]
fn a_job_whose_keepalive_lapses_reads_as_timed_out() {
    let mut w = world();
    let alice = w.alice.clone();
    let id = w.create(
        &alice,
        json!({"num-boards": 1, "tags": ["default"], "keepalive-interval": "PT30S"}),
    );
    let t = Instant(T0.0 + 31_000_000);
    w.svc.handle_timeout(t);
    let s = w.state(&alice, id);
    assert_eq!(s["state"], json!("DESTROYED"));
    assert_eq!(s["reason"], json!("Job timed out."));
    assert_eq!(s["finish-time"], json!("2026-11-22T02:06:22.871Z"));
}

#[test]
fn replies_carry_their_status_type_body_and_location() {
    let created = RestReply::Created {
        location: "https://h:1/x".into(),
        body: "{}".into(),
    };
    assert_eq!(
        (created.status(), created.location(), created.body()),
        (201, Some("https://h:1/x"), &b"{}"[..])
    );
    assert_eq!(
        (RestReply::Accepted.status(), RestReply::Accepted.content_type()),
        (202, None)
    );
    assert_eq!(RestReply::NoContent.status(), 204);
    assert_eq!(
        RestReply::Text("ok".into()).content_type(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(RestReply::NotFound("no such job".into()).body(), b"no such job");
    assert_eq!(RestReply::Unavailable(NO_PROXY.into()).status(), 503);
    assert_eq!(RestReply::BadRequest(String::new()).location(), None);
}

/// The status view of a machine, job list or job (panics on anything else).
fn status(r: RestReply) -> status::StatusView {
    match r {
        RestReply::Status(s) => {
            assert_eq!(s.now, T0);
            s.view
        }
        r => panic!("not a status reply: {r:?}"),
    }
}

fn status_machine(w: &mut World, who: &Caller, name: &str) -> status::MachineStatus {
    match status(w.call(who, RestCall::StatusMachine { name: name.into() })) {
        status::StatusView::Machine(m) => *m,
        v => panic!("{v:?}"),
    }
}

#[test]
fn status_pages_show_boards_jobs_and_power_under_the_apis_ownership_rule() {
    use status::{BoardPower, Holder, StatusView};
    let mut w = world();
    let (alice, bob, admin) = (w.alice.clone(), w.bob.clone(), w.admin.clone());
    let id = w.create(
        &alice,
        json!({"num-boards": 1, "tags": ["other"], "keepalive-interval": KA}),
    );
    // Allocated, being switched on.
    let m = status_machine(&mut w, &alice, "other");
    let held: Vec<_> = m.boards.iter().filter(|b| b.holder != Holder::Free).collect();
    assert_eq!(held.len(), 1, "{m:?}");
    let board = held[0].board;
    assert_eq!(held[0].power, BoardPower::PoweringOn);
    w.ack();
    let m = status_machine(&mut w, &alice, "other");
    let b = m.boards.iter().find(|b| b.board == board).unwrap();
    assert_eq!(
        b.holder,
        Holder::Job(status::JobRef {
            id,
            owner: "alice".into(),
            state: JobState::Ready
        })
    );
    assert_eq!(b.power, BoardPower::On);
    assert_eq!(b.ip.map(|ip| ip.octets()[..2].to_vec()), Some(vec![10, 11]));
    // The dead board and link are marked; the board positions are all there.
    assert_eq!(m.boards.len(), 3);
    assert!(m.boards.iter().find(|b| b.board == Board::new(0, 0, 2)).unwrap().dead);
    assert_eq!(m.dead_links, vec![(Board::new(0, 0, 0), Link::North)]);
    let c = m.counts();
    assert_eq!((c.total, c.dead, c.in_use, c.powered), (3, 1, 1, 1));
    // Bob sees that the board is in use, not whose or which job; an administrator sees it all.
    let theirs = status_machine(&mut w, &bob, "other");
    assert_eq!(
        theirs.boards.iter().find(|b| b.board == board).unwrap().holder,
        Holder::InUse
    );
    assert_eq!(status_machine(&mut w, &admin, "other"), m);
    // The machine list carries the same boards.
    let StatusView::Machines(all) = status(w.call(&bob, RestCall::StatusMachines)) else {
        panic!()
    };
    assert_eq!(all.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["m", "other"]);
    assert_eq!(all[1], theirs);
    assert_eq!(
        w.call(&bob, RestCall::StatusMachine { name: "nope".into() }),
        RestReply::NotFound(NO_SUCH_MACHINE.into())
    );
    // Jobs: alice's own; none for bob; all for the administrator. Bob's view of alice's job
    // is that of a job that does not exist.
    let StatusView::Job(j) = status(w.call(&alice, RestCall::StatusJob { id })) else {
        panic!()
    };
    assert_eq!(
        (j.state, j.power, j.owner.as_str()),
        (JobState::Ready, Some(true), "alice")
    );
    assert_eq!(j.request, "1 board tagged other");
    assert_eq!(j.machine.as_deref(), Some("other"));
    assert_eq!(j.boards.iter().map(|b| b.board).collect::<Vec<_>>(), vec![board]);
    assert_eq!(j.connections.len(), 1);
    assert_eq!(j.keepalive_host.as_deref(), Some("10.0.0.1"));
    assert_eq!(
        w.call(&bob, RestCall::StatusJob { id }),
        w.call(&bob, RestCall::StatusJob { id: JobId(999) })
    );
    assert_eq!(
        w.call(&bob, RestCall::StatusJob { id }),
        RestReply::NotFound(NO_SUCH_JOB.into())
    );
    let jobs = |w: &mut World, who: &Caller| match status(w.call(who, RestCall::StatusJobs)) {
        StatusView::Jobs(j) => j,
        v => panic!("{v:?}"),
    };
    assert_eq!(jobs(&mut w, &alice).live.len(), 1);
    assert!(jobs(&mut w, &bob).live.is_empty());
    assert_eq!(jobs(&mut w, &admin).live.len(), 1);
    // Looking changes nothing (not even a keepalive).
    w.svc.record_inputs(true);
    for who in [&alice, &bob, &admin] {
        for call in [
            RestCall::StatusMachines,
            RestCall::StatusMachine { name: "other".into() },
            RestCall::StatusJobs,
            RestCall::StatusJob { id },
        ] {
            w.call_at(Instant(T0.0 + 5_000_000), who, call);
        }
    }
    assert_eq!(w.svc.take_recorded(), vec![]);
    // Destroyed: the boards are switched off, then free; the job is listed as destroyed
    // with its reason.
    w.call(
        &alice,
        RestCall::DeleteJob {
            id,
            reason: Some("<b>done</b>".into()),
        },
    );
    let m = status_machine(&mut w, &alice, "other");
    let b = m.boards.iter().find(|b| b.board == board).unwrap();
    assert_eq!((&b.holder, b.power), (&Holder::Releasing, BoardPower::PoweringOff));
    w.ack();
    let m = status_machine(&mut w, &alice, "other");
    assert_eq!(m.counts().in_use, 0);
    let j = jobs(&mut w, &alice);
    assert!(j.live.is_empty());
    assert_eq!(j.destroyed.len(), 1);
    assert_eq!(j.destroyed[0].state, JobState::Destroyed);
    assert_eq!(j.destroyed[0].reason.as_deref(), Some("<b>done</b>"));
    assert_eq!(j.destroyed[0].boards.len(), 1);
    assert!(jobs(&mut w, &bob).destroyed.is_empty());
}
