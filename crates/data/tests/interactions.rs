//! Interaction files in MovieLens' three layouts, catalogs, splits, and bad files: each error
//! names the file and the line.

use ferrograd_data::interactions::{
    find_catalog, find_interactions, k_fold, leave_last_out, random_split, read_catalog,
    read_interactions, InteractionFormat, RatingScale,
};
use std::path::PathBuf;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferrograd-inter-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(d: &std::path::Path, name: &str, text: &[u8]) -> PathBuf {
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_three_layouts_read_the_same_interactions() {
    let d = dir("layouts");
    let u = write(&d, "u.data", b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n196\t302\t5\t881250950\n");
    let r = write(
        &d,
        "ml.inter",
        b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n196\t302\t5\t881250950\n",
    );
    let c = write(
        &d,
        "ratings.csv",
        b"userId,movieId,rating,timestamp\n196,242,3.0,881250949\n186,302,3.0,891717742\n22,377,1.0,878887116\n196,302,5.0,881250950\n",
    );
    let a = read_interactions(&u, None).unwrap();
    let b = read_interactions(&r, None).unwrap();
    let e = read_interactions(&c, None).unwrap();
    assert_eq!(a.format, InteractionFormat::UData);
    assert_eq!(b.format, InteractionFormat::RecBole);
    assert_eq!(e.format, InteractionFormat::Csv);
    for x in [&b, &e] {
        assert_eq!(
            (&x.users, &x.items, &x.ratings, &x.timestamps),
            (&a.users, &a.items, &a.ratings, &a.timestamps)
        );
        assert_eq!((&x.user_ids, &x.item_ids), (&a.user_ids, &a.item_ids));
    }
    // ids numbered in numeric order, whatever the order of the lines
    assert_eq!(a.user_ids, vec!["22", "186", "196"]);
    assert_eq!(a.item_ids, vec!["242", "302", "377"]);
    assert_eq!(a.users, vec![2, 1, 0, 2]);
    let (train, test) = leave_last_out(&a);
    assert_eq!(
        test,
        vec![3],
        "user 196's latest; single-interaction users stay in train"
    );
    assert_eq!(train, vec![0, 1, 2]);
    assert_eq!(find_interactions(&d).unwrap(), u);
}

#[test]
fn catalogs_give_titles_and_genres() {
    let d = dir("catalog");
    let i = write(&d, "u.item", b"1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n2|Caf\xe9 (1994)|01-Jan-1994||http://y|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n");
    let cat = read_catalog(&i).unwrap();
    assert_eq!(cat["1"].title, "Toy Story (1995)");
    assert_eq!(cat["1"].genres, vec!["Animation", "Children's", "Comedy"]);
    assert_eq!(cat["2"].title, "Caf\u{e9} (1994)", "Latin-1 decoded");
    let r = write(&d, "ml.item", b"item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n1\tToy Story\t1995\tAnimation Children's Comedy\n");
    let cat = read_catalog(&r).unwrap();
    assert_eq!(cat["1"].title, "Toy Story (1995)");
    assert_eq!(cat["1"].genres.len(), 3);
    let m = write(
        &d,
        "movies.csv",
        b"movieId,title,genres\n1,\"Toy Story, The (1995)\",Animation|Comedy\n",
    );
    let cat = read_catalog(&m).unwrap();
    assert_eq!(cat["1"].title, "Toy Story, The (1995)");
    assert_eq!(cat["1"].genres, vec!["Animation", "Comedy"]);
    let inter = write(
        &d,
        "ml.inter",
        b"user_id:token\titem_id:token\trating:float\n1\t1\t3\n",
    );
    assert_eq!(find_catalog(&inter), Some(i), "u.item comes first");
}

#[test]
fn splits_are_seeded_partitions() {
    let (tr, te) = random_split(1000, 0.2, 3).unwrap();
    assert_eq!((tr.len(), te.len()), (800, 200));
    assert_eq!(
        random_split(1000, 0.2, 3).unwrap().1,
        te,
        "same seed, same split"
    );
    assert_ne!(random_split(1000, 0.2, 4).unwrap().1, te);
    let folds = k_fold(100_000, 5, 0).unwrap();
    assert!(folds
        .iter()
        .all(|(a, b)| a.len() == 80_000 && b.len() == 20_000));
}

#[test]
fn bad_files_name_the_file_and_line() {
    let d = dir("bad");
    let cases: [(&str, &[u8], &str); 7] = [
        (
            "u.data",
            b"1\t2\t3\t4\n1\t2\t3\n",
            "line 2: expected 4 fields",
        ),
        (
            "u.data",
            b"1\t2\t7\t4\n",
            "line 1: the rating 7 is outside the scale 1-5",
        ),
        (
            "u.data",
            b"1\t2\tx\t4\n",
            "line 1: the rating \"x\" is not a number",
        ),
        ("u.data", b"1\t2\tNaN\t4\n", "outside the scale"),
        ("u.data", b"", "holds no interactions"),
        (
            "r.inter",
            b"user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n",
            "no rating column",
        ),
        ("r.csv", b"userId,movieId,rating\n1,2,3\n1,2\n", "line 3"),
    ];
    for (name, text, want) in cases {
        let p = write(&d, name, text);
        let e = read_interactions(&p, None).unwrap_err().to_string();
        assert!(
            e.contains(want) && e.contains(name),
            "{name} {:?}: {e}",
            String::from_utf8_lossy(text)
        );
    }
    let p = write(&d, "u.data", b"1\t2\t7\t4\n");
    let wide = RatingScale::parse("0:10").unwrap();
    assert_eq!(
        read_interactions(&p, Some(wide)).unwrap().ratings,
        vec![7.0]
    );
    assert!(RatingScale::parse("5:1").is_err());
    let e = find_interactions(&d.join("missing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no such file"), "{e}");
    let empty = dir("empty");
    let e = find_interactions(&empty).unwrap_err().to_string();
    assert!(e.contains("has no interactions file"), "{e}");
}
