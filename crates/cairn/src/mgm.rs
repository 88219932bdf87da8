//! `cairn mgm`: the management client (NDB's ndb_mgm). One command with `-e`, an interactive
//! prompt with line editing and history otherwise.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_proto::pb::{AdminCommand, frame::Body};
use cairn_proto::{Identity, Role, RpcClient};

#[derive(clap::Args, Debug)]
pub struct MgmArgs {
    /// Management server to connect to (host:port).
    #[arg(short = 'c', long = "connect-string", default_value = "127.0.0.1:1186")]
    pub connect: String,
    /// Run one command and exit.
    #[arg(short = 'e', long = "execute")]
    pub execute: Option<String>,
    /// The cluster secret (or set CAIRN_SECRET, or give --config).
    #[arg(long, env = "CAIRN_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Read the secret from this cluster config (default: ./cairn-data/cluster.toml if present).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Mutual TLS with the management node: a directory with `ca.pem` and this client's
    /// `client-<name>.pem` / `client-<name>-key.pem` (`cairn certs --client admin`). Default:
    /// the config's NodeSslDir, if it sets one.
    #[arg(long, env = "CAIRN_SSL_DIR")]
    pub ssl_dir: Option<PathBuf>,
    /// The client certificate's name in the TLS directory.
    #[arg(long, default_value = "admin")]
    pub ssl_client: String,
    /// The admin credential (the config's AdminPassword), needed for commands that change the
    /// cluster when the config sets one. Proven like the secret, never sent.
    #[arg(long, env = "CAIRN_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// A file holding the admin credential (its first line).
    #[arg(long)]
    pub admin_password_file: Option<PathBuf>,
}

/// What the client proves in its handshake: the admin credential when it has one (then the
/// cluster secret is not needed), else the cluster secret (commands that only read).
fn find_proof_secret(args: &MgmArgs) -> anyhow::Result<String> {
    if let Some(password) = &args.admin_password {
        return Ok(password.clone());
    }
    if let Some(path) = &args.admin_password_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let password = text.lines().next().unwrap_or("").trim().to_string();
        anyhow::ensure!(!password.is_empty(), "{} holds no admin password", path.display());
        return Ok(password);
    }
    find_secret(args)
}

/// The config `cairn mgm` reads defaults from, if there is one.
fn config(args: &MgmArgs) -> Option<cairn_control::ClusterConfig> {
    let path = args.config.clone().unwrap_or_else(|| PathBuf::from("cairn-data/cluster.toml"));
    cairn_control::ClusterConfig::parse(&std::fs::read_to_string(path).ok()?).ok()
}

/// The admin client's TLS: its certificate from the flag's directory or the config's
/// NodeSslDir; a TLS setup that does not load is an error, never a fallback to plain TCP.
fn find_tls(args: &MgmArgs) -> anyhow::Result<Option<cairn_proto::LinkTls>> {
    let dir = match &args.ssl_dir {
        Some(dir) => dir.clone(),
        None => match config(args).and_then(|c| c.cluster.node_ssl_dir) {
            Some(dir) => PathBuf::from(dir),
            None => return Ok(None),
        },
    };
    let files = cairn_proto::TlsFiles::for_client(&dir, &args.ssl_client);
    Ok(Some(cairn_proto::LinkTls::load(&files).context("TLS to the management server")?))
}

fn find_secret(args: &MgmArgs) -> anyhow::Result<String> {
    if let Some(s) = &args.secret {
        return Ok(s.clone());
    }
    let path = args.config.clone().unwrap_or_else(|| PathBuf::from("cairn-data/cluster.toml"));
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no cluster secret: give --secret, set CAIRN_SECRET, or --config FILE ({} not readable)",
            path.display()
        )
    })?;
    let config = cairn_control::ClusterConfig::parse(&text)?;
    Ok(config.cluster.secret)
}

/// How long a command may take: a backup that waits for completion copies every row, and
/// stops and restarts wait for the nodes to go.
fn timeout_for(line: &str) -> Duration {
    let upper = line.to_ascii_uppercase();
    if upper.starts_with("START BACKUP") {
        Duration::from_secs(24 * 3600)
    } else if ["STOP", "RESTART", "START", "SHUTDOWN", "ABORT"].iter().any(|w| upper.contains(w)) {
        Duration::from_secs(180)
    } else {
        Duration::from_secs(10)
    }
}

/// Prints a line of the admin client's output. A reader that went away (`cairn mgm -e show |
/// head`) ends the client quietly instead of with a panic on the broken pipe; the command it ran
/// has been answered already.
fn say(text: impl std::fmt::Display) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{text}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("cairn mgm: cannot write the answer: {e}");
        std::process::exit(1);
    }
}

async fn run_command(client: &RpcClient, connect: &str, line: &str) -> anyhow::Result<bool> {
    if line.trim().to_ascii_uppercase().starts_with("START BACKUP") && !line.to_ascii_uppercase().contains("NOWAIT") {
        let what = if line.to_ascii_uppercase().contains("WAIT STARTED") { "started" } else { "completed" };
        say(format_args!("Waiting for {what}, this may take several minutes"));
    }
    let reply = client
        .call(Body::AdminCommand(AdminCommand { command: line.to_string() }), timeout_for(line))
        .await
        .with_context(|| format!("no answer from the management server at {connect}"))?;
    let Body::AdminReply(reply) = reply else { bail!("unexpected answer from the management server") };
    if line.trim().eq_ignore_ascii_case("show") {
        say(format_args!("Connected to Management Server at: {connect}"));
    }
    // The management node's answer repeats the waiting line (for clients that print only the
    // answer); it was printed above already, before the wait.
    let text = reply.text.trim_end();
    let text = text.strip_prefix("Waiting for completed, this may take several minutes\n").unwrap_or(text);
    let text = text.strip_prefix("Waiting for started, this may take several minutes\n").unwrap_or(text);
    say(text);
    Ok(reply.ok)
}

pub async fn run(args: MgmArgs) -> anyhow::Result<i32> {
    let secret = find_proof_secret(&args)?;
    let identity = Identity {
        node_id: 0,
        role: Role::Admin,
        secret,
        software_version: cairn_mgmd::admin::SOFTWARE_VERSION.to_string(),
        tls: find_tls(&args)?,
    };
    let link = match cairn_proto::connect(&args.connect, &identity).await {
        Ok(link) => link,
        Err(e) => {
            eprintln!("Unable to connect with connect string: nodeid=0,{}: {e}", args.connect);
            return Ok(1);
        }
    };
    let (client, _pushes) = RpcClient::new(link);
    if let Some(command) = &args.execute {
        let ok = run_command(&client, &args.connect, command).await?;
        return Ok(if ok { 0 } else { 1 });
    }
    interactive(client, args.connect).await
}

async fn interactive(client: RpcClient, connect: String) -> anyhow::Result<i32> {
    say("-- Cairn -- Management Client --");
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cairn_mgm_history"));
    // rustyline blocks, so it runs on its own thread and hands lines over.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut editor = rustyline::DefaultEditor::new()?;
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        loop {
            match editor.readline("cairn_mgm> ") {
                Ok(line) => {
                    let trimmed = line.trim().to_string();
                    if trimmed.is_empty() {
                        continue;
                    }
                    let _ = editor.add_history_entry(&trimmed);
                    if tx.blocking_send(trimmed).is_err() {
                        break;
                    }
                    // Wait for the answer before prompting again.
                    if done_rx.recv().is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
        Ok(())
    });
    while let Some(line) = rx.recv().await {
        if matches!(line.to_ascii_uppercase().as_str(), "QUIT" | "EXIT" | "BYE") {
            break;
        }
        if let Err(e) = run_command(&client, &connect, &line).await {
            eprintln!("{e:#}");
        }
        let _ = done_tx.send(());
    }
    drop(rx);
    drop(done_tx);
    let _ = reader.join();
    Ok(0)
}
