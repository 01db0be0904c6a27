package org.relattn;

/** A call librelattn rejected: status is the relattn_status code; the message names the field
 * and the expected range ("bad dimension: head_dim = 300: must be in 1..256"). */
public class RelAttnException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public final int status;

  public RelAttnException(int status, String message) {
    super(message);
    this.status = status;
  }
}
