//! Manual/debug client for the guest agent.
//!
//! ```text
//! cargo run -p lab-agent-proto --example agentctl -- SOCKET [--timeout SECS] CMD...
//!   ready               wait for the Ready line (first connection only)
//!   hello               round trip, prints guest kernel and uptime
//!   sh SCRIPT           run `sh -c SCRIPT`, print output, exit with its code
//!   exec ARGV...        run a program
//!   kmsg TEXT           write a marker line to the guest's /dev/kmsg
//!   read PATH           print a guest file
//!   write PATH LOCAL    copy a local file into the guest
//!   poweroff            power the guest off
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lab_agent_proto::{AgentClient, ExecRequest, ExitStatus};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agentctl: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err("usage: agentctl SOCKET [--timeout SECS] CMD...".into());
    }
    let socket = args.remove(0);
    let mut timeout = Duration::from_secs(60);
    if args.first().map(String::as_str) == Some("--timeout") && args.len() > 2 {
        timeout = Duration::from_secs_f64(args[1].parse()?);
        args.drain(..2);
    }
    let client = AgentClient::connect(&socket, Instant::now() + timeout)?;
    let cmd = args.remove(0);
    let exec = |req: ExecRequest| -> Result<ExitCode, Box<dyn std::error::Error>> {
        let r = client.exec(req.timeout(timeout), timeout + Duration::from_secs(5))?;
        print!("{}", r.stdout);
        eprint!("{}", r.stderr);
        eprintln!("[{:?} in {} ms]", r.status, r.duration_ms);
        Ok(match r.status {
            ExitStatus::Exited(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
            _ => ExitCode::from(1),
        })
    };
    match (cmd.as_str(), args.as_slice()) {
        ("ready", []) => println!("agent {}", client.wait_ready(timeout)?),
        ("hello", []) => {
            let h = client.hello(timeout)?;
            println!(
                "agent {} kernel {} uptime {} ms",
                h.agent_version, h.kernel_release, h.uptime_ms
            );
        }
        ("sh", [script]) => return exec(ExecRequest::sh(script.clone())),
        ("exec", argv) if !argv.is_empty() => return exec(ExecRequest::new(argv.to_vec())),
        ("kmsg", [text]) => client.kmsg(text, timeout)?,
        ("read", [path]) => {
            let data = client.read_file(path, lab_agent_proto::MAX_FILE_LEN, timeout)?;
            std::io::stdout().write_all(&data)?;
        }
        ("write", [path, local]) => {
            client.write_file(path, &std::fs::read(local)?, None, timeout)?
        }
        ("poweroff", []) => client.poweroff(timeout)?,
        _ => return Err(format!("bad command {cmd:?} {args:?}").into()),
    }
    Ok(ExitCode::SUCCESS)
}
